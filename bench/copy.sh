#!/bin/bash
# Figure "copy": bulkhead-copy of a 1 GiB file from one compartment to another (the sender reads
# the file into the call's socket, the receiver in the target writes it to ~/Incoming/SOURCE/),
# in MB/s.
#
# peer: `cat FILE | cat > /dev/null` in the same compartment, on the same file (the issue's
# yardstick: a pipe between two processes, and no file written at the far end).
#
# Each side is timed inside the calling compartment (posix_spawn to waitpid); rounds alternate; the
# received copy is removed between rounds. Before every timed command `sync` runs and the file is
# read once, so that no round pays for writing back the previous one's pages or for reading the
# file from disk (without this, rounds varied from 0.2 s to 3 s on the same machine, with the disk,
# not bulkhead, deciding). Prints one JSON line (see bench/lib.bash).
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require python3
[ "$(id -u)" -eq 0 ] || bench_fail "copy: the broker needs root"
[ -x "$BULKHEAD" ] || bench_fail "copy: $BULKHEAD not found: build it first (make build)"
runs=$((BENCH_RUNS < 9 ? BENCH_RUNS : 9))
size_mib=${BENCH_COPY_MIB:-1024}

bench_broker_start '[templates.host]
kind = "host"

[compartments.sender]
label = "blue"

[compartments.receiver]
label = "green"'
mkdir -p "$BENCH_ROOT/policy.d"
printf 'bulkhead.Filecopy * sender receiver allow\n' >"$BENCH_ROOT/policy.d/bench.policy"
"$BULKHEAD" apply --root "$BENCH_ROOT" "$BENCH_ROOT/system.toml" >&2
"$BULKHEAD" start --root "$BENCH_ROOT" receiver >&2
"$BULKHEAD" run --root "$BENCH_ROOT" sender -- sh -c "head -c ${size_mib}M /dev/urandom > big" >&2

timer='import os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], dict(os.environ))
_, status = os.waitpid(pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"{sys.argv[1:]} failed")
print((time.perf_counter() - start) * 1000.0)'
warm() {
    sync
    "$BULKHEAD" run --root "$BENCH_ROOT" sender -- cat big >/dev/null
}
ours=() peer=()
for round in $(seq "$runs"); do
    # Each timed command starts with no dirty pages and with the file in the page cache: the figure
    # is the copy, not the disk writing back what the previous round left (1 GiB stays far below the
    # dirty limits) or reading the file again after the page cache lost it (that happened between
    # rounds on this VM, and then always to the side that ran first).
    warm
    ours+=("$("$BULKHEAD" run --root "$BENCH_ROOT" sender -- python3 -c "$timer" /run/bulkhead/bin/bulkhead-copy receiver big)")
    "$BULKHEAD" run --root "$BENCH_ROOT" receiver -- rm -rf /home/user/Incoming
    warm
    peer+=("$("$BULKHEAD" run --root "$BENCH_ROOT" sender -- python3 -c "$timer" /bin/sh -c 'cat big | cat > /dev/null')")
    echo "bench: copy round $round: ${ours[-1]} ms, peer ${peer[-1]} ms" >&2
done
python3 - "$size_mib" "${ours[*]}" "${peer[*]}" <<'PY'
import json, statistics, sys
mib = int(sys.argv[1])
ours = [float(x) for x in sys.argv[2].split()]
peer = [float(x) for x in sys.argv[3].split()]
def summary(label, command, times):
    return {"label": label, "command": command, "median_ms": statistics.median(times), "mean_ms": statistics.mean(times),
            "stddev_ms": statistics.stdev(times) if len(times) > 1 else 0.0, "min_ms": min(times), "max_ms": max(times),
            "runs": len(times)}
o = summary("bulkhead", "bulkhead-copy receiver big", ours)
p = summary("cat FILE | cat > /dev/null", "sh -c 'cat big | cat > /dev/null'", peer)
rate = lambda ms: mib * 1.048576 / (ms / 1000.0)
notes = [f"{mib} MiB: bulkhead-copy {rate(o['median_ms']):.0f} MB/s, cat | cat {rate(p['median_ms']):.0f} MB/s; "
         f"throughput ratio (bulkhead / peer) {p['median_ms'] / o['median_ms']:.2f}",
         "the receiver writes the file to the target's home (page cache); the peer writes nothing",
         "before every timed command: sync, and the file read once (untimed): neither the disk's writeback of earlier rounds nor a re-read from disk is in the figure",
         "timed inside the sending compartment (posix_spawn to waitpid), alternating rounds"]
print(json.dumps({"figure": f"copy: bulkhead-copy of {mib} MiB between two compartments", "bulkhead": o, "peer": p,
                  "ratio": o["median_ms"] / p["median_ms"], "notes": notes}))
PY
