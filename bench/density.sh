#!/bin/bash
# Figure "density": 500 compartments running at once under one broker. A generated configuration
# with 500 persistent compartments; `bulkhead start NAME` for each, BENCH_DENSITY_PARALLEL (4)
# clients at a time; the figure is the time until `ls --json` shows all 500 running. The notes
# give the broker's RSS and descriptors, the memory used (`free`'s used = MemTotal - MemAvailable)
# before and after, the time to stop them all, and the check that nothing is left: ls shows all
# stopped, no DIR/run/compartments/* or DIR/run/ipc/* entry, no per-compartment cgroup.
#
# peer: 500 of start.sh's bwrap sandboxes running `sh -c 'echo ready; exec sleep infinity'`,
# started the same way (4 in flight), counted as started when their line arrives (bench/fleet.py).
#
# One run of each (BENCH_DENSITY_COUNT=500 compartments; the broker has 1024 id slots per root).
# Prints one JSON line in bench/lib.bash's format; run it alone or through bench/run.
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require bwrap python3
[ "$(id -u)" -eq 0 ] || bench_fail "density: the broker needs root"
[ -x "$BULKHEAD" ] || bench_fail "density: $BULKHEAD not found: build it first (make build)"

count=${BENCH_DENSITY_COUNT:-500}
parallel=${BENCH_DENSITY_PARALLEL:-4}
config='[templates.host]
kind = "host"
'
for i in $(seq -w 1 "$count"); do
    config+="
[compartments.d$i]
label = \"gray\"
network = \"none\"
"
done
names=$(seq -w 1 "$count" | sed 's/^/d/')

used_kib() {
    awk '/^MemTotal:/ {total = $2} /^MemAvailable:/ {available = $2} END {print total - available}' /proc/meminfo
}
vmrss_kib() {
    sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"
}
now_ms() {
    date +%s%3N
}
# count_state STATE: how many of the configured compartments ls shows in STATE
count_state() {
    bench_ls_json | python3 -c 'import json, sys; print(sum(c["state"] == sys.argv[1] and not c["disposable"] for c in json.load(sys.stdin)["compartments"]))' "$1"
}

bench_broker_start "$config"
sleep 1
broker_rss_before=$(vmrss_kib "$BENCH_DAEMON")
broker_fds_before=$(find "/proc/$BENCH_DAEMON/fd" -mindepth 1 | wc -l)
cgroup_dirs=$(sed -n 's/^bulkhead daemon: cgroups under //p' "$BENCH_LOG" | sort -u)
sync
used_before=$(used_kib)

echo "density: starting $count compartments, $parallel at a time" >&2
errors=$BENCH_ROOT/start-errors
start_begin=$(now_ms)
printf '%s\n' $names | xargs -n 1 -P "$parallel" "$BULKHEAD" start --root "$BENCH_ROOT" 2>"$errors" >&2 || true
running=0
for _ in $(seq 300); do
    running=$(count_state running)
    [ "$running" -eq "$count" ] && break
    [ -s "$errors" ] && break
    sleep 0.1
done
start_ms=$(($(now_ms) - start_begin))
if [ "$running" -ne "$count" ]; then
    echo "density: only $running of $count compartments are running; the first errors:" >&2
    head -n 20 "$errors" >&2
    echo "density: the broker's log ends with:" >&2
    tail -n 20 "$BENCH_LOG" >&2
    echo "density: limits: fds $(find "/proc/$BENCH_DAEMON/fd" -mindepth 1 | wc -l) open of $(sed -n 's/^Max open files *\([0-9]*\).*/\1/p' "/proc/$BENCH_DAEMON/limits");" \
        "pids $(ls /proc | grep -c '^[0-9]') of $(cat /proc/sys/kernel/pid_max);" \
        "user namespaces max $(cat /proc/sys/user/max_user_namespaces)" >&2
    bench_fail "density: $count compartments did not all start"
fi
sleep 2
broker_rss=$(vmrss_kib "$BENCH_DAEMON")
broker_fds=$(find "/proc/$BENCH_DAEMON/fd" -mindepth 1 | wc -l)
used_after=$(used_kib)
agent_rss=$(bench_ls_json | python3 -c '
import json, sys
total = 0
for c in json.load(sys.stdin)["compartments"]:
    for line in open("/proc/%d/status" % c["pid"]):
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
print(total)')
echo "density: $count running in $start_ms ms; broker RSS $broker_rss KiB; stopping them" >&2

stop_begin=$(now_ms)
printf '%s\n' $names | xargs -n 1 -P "$parallel" "$BULKHEAD" stop --root "$BENCH_ROOT" >&2
stop_ms=$(($(now_ms) - stop_begin))
stopped=$(count_state stopped)
[ "$stopped" -eq "$count" ] || bench_fail "density: after stopping, ls shows $stopped of $count stopped"
leftovers=$(find "$BENCH_ROOT/run/compartments" "$BENCH_ROOT/run/ipc" -mindepth 1 -maxdepth 1)
[ -z "$leftovers" ] || bench_fail "density: left behind after stopping: $(echo "$leftovers" | head -n 5)"
for dir in $cgroup_dirs; do
    cgroups_left=$(find "$dir" -mindepth 1 -maxdepth 1 -type d | wc -l)
    [ "$cgroups_left" -eq 0 ] || bench_fail "density: $cgroups_left cgroups left under $dir"
done
broker_rss_stopped=$(vmrss_kib "$BENCH_DAEMON")
broker_fds_stopped=$(find "/proc/$BENCH_DAEMON/fd" -mindepth 1 | wc -l)
sync
used_stopped=$(used_kib)

echo "density: the peer: $count bwrap sandboxes" >&2
bench_bwrap_peer
bench_bwrap+=(sh -c 'echo ready; exec sleep infinity')
peer=$(python3 "$bench_dir/fleet.py" "$count" "$parallel" -- "${bench_bwrap[@]}")

python3 - "$count" "$parallel" "$start_ms" "$stop_ms" "$broker_rss_before" "$broker_rss" "$broker_rss_stopped" \
    "$broker_fds_before" "$broker_fds" "$broker_fds_stopped" "$used_before" "$used_after" "$used_stopped" "$agent_rss" \
    "$peer" "$BULKHEAD start --root ROOT d001 ... d$count ($parallel at a time)" \
    "${bench_bwrap[*]:0:$((${#bench_bwrap[@]} - 1))} 'echo ready; exec sleep infinity' ($parallel at a time)" <<'EOF'
import json, sys

(count, parallel, start_ms, stop_ms, rss_before, rss, rss_stopped, fds_before, fds, fds_stopped,
 used_before, used_after, used_stopped, agent_rss) = (int(value) for value in sys.argv[1:15])
peer = json.loads(sys.argv[15])
ours_command, peer_command = sys.argv[16:18]
if peer["failures"] or peer["left"]:
    raise SystemExit(f"density: the peer: {peer['failures']} sandboxes failed, {peer['left']} processes left")

def single(label, command, value):
    return {"label": label, "command": command, "median_ms": value, "mean_ms": value, "stddev_ms": 0.0,
            "min_ms": value, "max_ms": value, "runs": 1}

mib = lambda kib: kib / 1024
used = used_after - used_before
notes = [
    f"{count} compartments of one broker running at once; started with `bulkhead start`, {parallel} clients at a time, "
    f"until ls --json shows all running: {start_ms / 1000:.1f} s ({start_ms / count:.1f} ms each); "
    f"bwrap: {peer['start_ms'] / 1000:.1f} s ({peer['start_ms'] / count:.1f} ms each)",
    f"broker RSS {mib(rss_before):.1f} MiB -> {mib(rss):.1f} MiB with {count} running "
    f"({(rss - rss_before) / count:.1f} KiB each), {mib(rss_stopped):.1f} MiB after stopping them; "
    f"broker descriptors {fds_before} -> {fds} -> {fds_stopped}",
    f"memory used (free: MemTotal - MemAvailable) {mib(used_before):.0f} MiB -> {mib(used_after):.0f} MiB: "
    f"{mib(used):.0f} MiB for {count} compartments, {mib(used) / count:.2f} MiB each "
    f"(agents' VmRSS {mib(agent_rss) / count:.2f} MiB each); after stopping {mib(used_stopped):.0f} MiB; "
    f"bwrap: {mib(peer['memory_used_kib']):.0f} MiB, {mib(peer['memory_used_kib']) / count:.2f} MiB each "
    f"(VmRSS {mib(peer['rss_kib']) / count:.2f} MiB each)",
    f"stopping all {count} (`bulkhead stop`, {parallel} at a time): {stop_ms / 1000:.1f} s; then ls shows all stopped, "
    f"no DIR/run/compartments/*, DIR/run/ipc/* or per-compartment cgroup is left; "
    f"bwrap: SIGTERM to all until their {peer['processes']} processes are gone: {peer['stop_ms'] / 1000:.1f} s",
    "one run each (machine noise included); the machine's other load shows in the memory figures",
]
ours = single("bulkhead", ours_command, float(start_ms))
theirs = single("bwrap sh -c 'echo ready; exec sleep infinity'", peer_command, peer["start_ms"])
print(json.dumps({"figure": f"density: start {count} compartments, until all run", "bulkhead": ours, "peer": theirs,
                  "ratio": ours["median_ms"] / theirs["median_ms"], "notes": notes,
                  "broker_rss_kib": rss, "memory_used_kib": used, "stop_ms": stop_ms, "peer_details": peer}))
EOF
