#!/bin/bash
# Figure "idle memory": memory per idle running compartment. 20 persistent compartments are started
# (`bulkhead start`), left idle for a moment, and for each one the figure is
#   VmRSS of its PID 1, the agent (/proc/PID/status)
#   + the broker's bookkeeping: (broker VmRSS with the 20 running - before) / 20
# in MiB; the table shows the median over the 20 compartments. The notes add the same with Pss
# (/proc/PID/smaps_rollup: shared pages split among their users), the compartments' cgroup memory
# (ls --json memory_bytes). What the kernel keeps per compartment (namespaces, mounts, cgroups) is
# not in these; density.sh gives the machine's memory use with 500 running.
#
# peer, for scale: 20 idle `bwrap ... sleep infinity` sandboxes (start.sh's command line), each the
# sum of VmRSS over its process tree (bwrap, bwrap as PID 1 inside, sleep).
#
# Prints one JSON line in bench/lib.bash's format with "unit": "MiB"; run it alone or through bench/run.
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require bwrap python3
[ "$(id -u)" -eq 0 ] || bench_fail "idle_memory: the broker needs root"
[ -x "$BULKHEAD" ] || bench_fail "idle_memory: $BULKHEAD not found: build it first (make build)"

count=20
config='[templates.host]
kind = "host"
'
for i in $(seq -w 1 $count); do
    config+="
[compartments.c$i]
label = \"gray\"
network = \"none\"
"
done
bench_broker_start "$config"
names=$(seq -f "c%02g" 1 $count)

# Let the broker settle after its start-up, then take its size with nothing running.
sleep 1
broker_before=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$BENCH_DAEMON/status")
broker_pss_before=$(sed -n 's/^Pss:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$BENCH_DAEMON/smaps_rollup")
for name in $names; do
    "$BULKHEAD" start --root "$BENCH_ROOT" "$name" >&2
done
for _ in $(seq 100); do
    running=$(bench_ls_json | python3 -c 'import json,sys; print(sum(c["state"] == "running" for c in json.load(sys.stdin)["compartments"]))')
    [ "$running" -eq $count ] && break
    sleep 0.1
done
[ "$running" -eq $count ] || bench_fail "idle_memory: only $running of $count compartments came up"
sleep 2 # idle
listing=$(bench_ls_json)

# The peer: as many idle bwrap sandboxes.
bench_bwrap_peer
bench_bwrap+=(sleep infinity)
peer_pids=()
bench_extra_cleanup+=('kill ${peer_pids[*]}')
for _ in $(seq $count); do
    "${bench_bwrap[@]}" </dev/null >/dev/null 2>&1 &
    peer_pids+=($!)
done
sleep 2

python3 - "$count" "$BENCH_DAEMON" "$broker_before" "$broker_pss_before" \
    "$BULKHEAD start --root ROOT c01 ... c$count" "${bench_bwrap[*]}" "$listing" "${peer_pids[@]}" <<'EOF'
import json, os, statistics, sys

count, broker, broker_before, broker_pss_before, ours_command, peer_command, listing = sys.argv[1:8]
count = int(count)
peer_roots = [int(pid) for pid in sys.argv[8:]]

def status_kib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise SystemExit(f"idle_memory: no {key} for process {pid}")

def pss_kib(pid):
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise SystemExit(f"idle_memory: no Pss for process {pid}")

def tree(pid):
    pids = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in open(f"/proc/{pid}/task/{task}/children").read().split():
            pids += tree(int(child))
    return pids

def summary(label, command, values):
    return {"label": label, "command": command, "median_ms": statistics.median(values),
            "mean_ms": statistics.mean(values), "stddev_ms": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min_ms": min(values), "max_ms": max(values), "runs": len(values)}

mib = lambda kib: kib / 1024
compartments = [c for c in json.loads(listing)["compartments"] if c["state"] == "running"]
if len(compartments) != count:
    raise SystemExit(f"idle_memory: {len(compartments)} compartments running, expected {count}")
broker_after = status_kib(broker, "VmRSS")
broker_share = (broker_after - int(broker_before)) / count
broker_pss_share = (pss_kib(broker) - int(broker_pss_before)) / count
agent_rss, agent_pss, cgroup_memory, processes = [], [], [], []
for c in compartments:
    members = tree(c["pid"])
    processes.append(len(members))
    agent_rss.append(sum(status_kib(p, "VmRSS") for p in members))
    agent_pss.append(sum(pss_kib(p) for p in members))
    if c.get("memory_bytes") is not None:
        cgroup_memory.append(c["memory_bytes"] / 1024)
peer_rss, peer_pss, peer_processes = [], [], []
for root in peer_roots:
    members = tree(root)
    peer_processes.append(len(members))
    peer_rss.append(sum(status_kib(p, "VmRSS") for p in members))
    peer_pss.append(sum(pss_kib(p) for p in members))
if min(peer_processes) < 3:
    raise SystemExit(f"idle_memory: a bwrap sandbox has only {min(peer_processes)} processes (expected bwrap, bwrap, sleep)")

ours = summary("bulkhead", ours_command, [mib(r + broker_share) for r in agent_rss])
peer = summary("bwrap sleep infinity", peer_command, [mib(r) for r in peer_rss])
notes = [
    f"{count} idle compartments of one broker; per compartment: VmRSS of its processes "
    f"({max(processes)} process{'es' if max(processes) > 1 else ''}: the agent) "
    f"+ the broker's VmRSS growth / {count}",
    f"agent VmRSS median {statistics.median(agent_rss):.0f} KiB; broker VmRSS {int(broker_before)} -> "
    f"{broker_after} KiB, {broker_share:.0f} KiB per compartment",
    f"with Pss instead (shared pages split among their users): agent Pss median {statistics.median(agent_pss):.0f} KiB "
    f"+ broker Pss growth {broker_pss_share:.0f} KiB = {mib(statistics.median(agent_pss) + broker_pss_share):.2f} MiB "
    f"per compartment; bwrap tree Pss median {mib(statistics.median(peer_pss)):.2f} MiB",
    "cgroup memory of a compartment (ls --json memory_bytes) median "
    + (f"{mib(statistics.median(cgroup_memory)):.2f} MiB" if cgroup_memory else "unavailable")
    + "; kernel memory (namespaces, mounts, cgroups) is in none of these: see the density figure",
]
print(json.dumps({"figure": f"idle memory: per running idle compartment (agent RSS + broker share, {count} running)",
                  "unit": "MiB", "bulkhead": ours, "peer": peer, "ratio": ours["median_ms"] / peer["median_ms"],
                  "notes": notes}))
EOF
