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
# not bulkhead, deciding).
#
# On a virtual machine whose memory balloon reports free pages to the host (virtio-balloon free page
# reporting, as on the VM these figures come from), memory the guest freed is handed back, and the
# first touch of it costs a fault in the host. The receiver writes 1 GiB of new page cache, the peer
# writes nothing, so rounds whose copy landed in reported memory took 0.8-3 s instead of 0.25 s:
# the hypervisor, not bulkhead, decided. There (BENCH_COPY_PRETOUCH=auto, the default; 1 forces it,
# 0 turns it off) every timed command, ours and the peer's alike, is preceded by a 3 s pause (the
# kernel reports freed memory 2 s after it was freed: the previous round's frees are reported by
# then) and a process that touches and frees BENCH_COPY_MIB + 512 MiB: the copy then writes into
# memory the host backs, as on a machine with no balloon. The notes say whether this ran.
# Prints one JSON line (see bench/lib.bash).
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

# Whether a virtio balloon with free page reporting (feature bit 5) is bound.
free_page_reporting() {
    local dev
    for dev in /sys/bus/virtio/devices/*; do
        [ "$(cat "$dev/device" 2>/dev/null)" = 0x0005 ] || continue
        [ -e "$dev/driver" ] || continue
        [ "$(cut -c6 "$dev/features" 2>/dev/null)" = 1 ] && return 0
    done
    return 1
}
pretouch=${BENCH_COPY_PRETOUCH:-auto}
if [ "$pretouch" = auto ]; then
    pretouch=0
    free_page_reporting && pretouch=1
fi

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
    [ "$pretouch" = 1 ] || return 0
    sleep 3
    python3 -c 'import mmap, sys
size = int(sys.argv[1]) << 20
memory = mmap.mmap(-1, size)
for offset in range(0, size, 4096):
    memory[offset] = 1' $((size_mib + 512))
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
python3 - "$size_mib" "${ours[*]}" "${peer[*]}" "$pretouch" <<'PY'
import json, statistics, sys
mib = int(sys.argv[1])
pretouch = sys.argv[4] == "1"
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
         "timed inside the sending compartment (posix_spawn to waitpid), alternating rounds",
         f"rounds (ms): bulkhead-copy {', '.join(f'{t:.0f}' for t in ours)}; peer {', '.join(f'{t:.0f}' for t in peer)}",
         "this machine's memory balloon reports free pages to the host: before every timed command (both sides) a 3 s "
         f"pause and {mib + 512} MiB touched and freed, so that the copy writes into memory the host backs"
         if pretouch else "no free page reporting here (or BENCH_COPY_PRETOUCH=0): memory not pre-touched"]
print(json.dumps({"figure": f"copy: bulkhead-copy of {mib} MiB between two compartments", "bulkhead": o, "peer": p,
                  "ratio": o["median_ms"] / p["median_ms"], "notes": notes}))
PY
