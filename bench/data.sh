#!/bin/bash
# Figure "data": a 1 GiB file written and read through an idmapped volume inside a compartment, side
# by side with the same dd on the host into a folder of the same filesystem, in the same run; and
# `bulkhead copy` of a 1 GiB host file into a compartment against `cp` of it on the host.
#
# write: dd if=/dev/zero bs=1M count=1024 conv=fsync (into the volume / the host folder);
# read:  dd of=/dev/null bs=1M of that file, from the page cache (the mount's own cost, not the disk's);
# copy:  bulkhead copy FILE work (sender on the host, receiver in work, into ~/Incoming/host/, a home
#        image) against cp FILE to a host folder followed by sync, and the copy also followed by sync.
# BENCH_DATA_ROUNDS rounds (default 5), alternating; each figure is the median time; ratio = bulkhead
# time / peer time (1.0 = as fast; targets: volume within 1/0.95, copy within 1/0.8). The headline is
# the volume write; the others are in the notes. Prints one JSON line in bench/lib.bash's format.
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require python3 dd
[ "$(id -u)" -eq 0 ] || bench_fail "data: the broker needs root"
ROUNDS=${BENCH_DATA_ROUNDS:-5}

bench_broker_start "[templates.host]
kind = \"host\"

[volumes.documents]

[compartments.work]
label = \"blue\"
disk = \"4G\"
mounts = [ { volume = \"documents\", at = \"Documents\", mode = \"rw\" } ]"
mkdir -p "$BENCH_ROOT/policy.d"
echo 'bulkhead.Filecopy  *  @host  work  allow' >"$BENCH_ROOT/policy.d/10-bench.policy"
"$BULKHEAD" apply --root "$BENCH_ROOT" "$BENCH_ROOT/system.toml" >/dev/null
"$BULKHEAD" start --root "$BENCH_ROOT" work >/dev/null
HOSTDIR=$BENCH_ROOT/host-folder
mkdir -p "$HOSTDIR"
dd if=/dev/urandom of="$BENCH_ROOT/source.bin" bs=1M count=1024 status=none

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print((float(sys.argv[2]) - float(sys.argv[1])) * 1000)" "$1" "$2"; }
timed() { local a b; a=$(now); "$@" >/dev/null 2>&1; b=$(now); elapsed "$a" "$b"; }

w_ours=() w_peer=() r_ours=() r_peer=() c_ours=() c_peer=()
for _ in $(seq "$ROUNDS"); do
    "$BULKHEAD" run --root "$BENCH_ROOT" work -- rm -f Documents/big
    rm -f "$HOSTDIR/big"
    sync
    w_ours+=("$(timed "$BULKHEAD" run --root "$BENCH_ROOT" work -- dd if=/dev/zero of=Documents/big bs=1M count=1024 conv=fsync)")
    w_peer+=("$(timed dd if=/dev/zero of="$HOSTDIR/big" bs=1M count=1024 conv=fsync)")
    r_ours+=("$(timed "$BULKHEAD" run --root "$BENCH_ROOT" work -- dd if=Documents/big of=/dev/null bs=1M)")
    r_peer+=("$(timed dd if="$HOSTDIR/big" of=/dev/null bs=1M)")
    "$BULKHEAD" run --root "$BENCH_ROOT" work -- rm -rf Incoming/host
    rm -f "$HOSTDIR/copy.bin"
    sync
    c_ours+=("$(timed sh -c "'$BULKHEAD' copy --root '$BENCH_ROOT' '$BENCH_ROOT/source.bin' work && sync")")
    c_peer+=("$(timed sh -c "cp '$BENCH_ROOT/source.bin' '$HOSTDIR/copy.bin' && sync")")
done

python3 - "$(IFS=,; echo "${w_ours[*]}")" "$(IFS=,; echo "${w_peer[*]}")" "$(IFS=,; echo "${r_ours[*]}")" \
    "$(IFS=,; echo "${r_peer[*]}")" "$(IFS=,; echo "${c_ours[*]}")" "$(IFS=,; echo "${c_peer[*]}")" <<'PY'
import json, statistics, sys
w_ours, w_peer, r_ours, r_peer, c_ours, c_peer = ([float(x) for x in a.split(",")] for a in sys.argv[1:7])
def side(label, values, command):
    return {"label": label, "command": command, "median_ms": statistics.median(values), "mean_ms": statistics.mean(values),
            "stddev_ms": statistics.stdev(values) if len(values) > 1 else 0.0, "min_ms": min(values),
            "max_ms": max(values), "runs": len(values)}
m = statistics.median
mib_s = lambda ms: 1024 / (ms / 1000)
notes = [
    "ratio = bulkhead time / peer time (1.0 = as fast); each includes starting the command in the compartment (a few ms)",
    f"write 1 GiB (conv=fsync): volume {m(w_ours):.0f} ms ({mib_s(m(w_ours)):.0f} MiB/s), host folder {m(w_peer):.0f} ms ({mib_s(m(w_peer)):.0f} MiB/s), ratio {m(w_ours)/m(w_peer):.2f}",
    f"read 1 GiB (page cache): volume {m(r_ours):.0f} ms, host folder {m(r_peer):.0f} ms, ratio {m(r_ours)/m(r_peer):.2f} (throughput {m(r_peer)/m(r_ours):.2f} of the host's; target 0.95)",
    f"copy 1 GiB host -> compartment: bulkhead copy + sync {m(c_ours):.0f} ms ({mib_s(m(c_ours)):.0f} MiB/s), cp + sync {m(c_peer):.0f} ms ({mib_s(m(c_peer)):.0f} MiB/s); throughput {m(c_peer)/m(c_ours):.2f} of cp's (target 0.8)",
]
print(json.dumps({"figure": "data: 1 GiB written through an idmapped volume (dd conv=fsync)", "bulkhead": side("bulkhead", w_ours, "bulkhead run work -- dd of=Documents/big"),
                  "peer": side("host folder", w_peer, "dd of=HOSTDIR/big"), "ratio": m(w_ours) / m(w_peer), "notes": notes}))
PY
