#!/bin/bash
# Figure "data": a 1 GiB file written and read through an idmapped volume inside a compartment, side
# by side with the same dd on the host into a folder of the same filesystem, in the same run; and
# `bulkhead copy` of a 1 GiB host file into a compartment against `cp` of it on the host.
#
# write: dd if=/dev/zero bs=1M count=1024 conv=fsync (into the volume / the host folder), dd's own time;
# read:  dd of=/dev/null bs=1M of that file, read once before, so from the page cache (the mount's
#        own cost, not the disk's), dd's own time, the best of three;
# copy:  bulkhead copy FILE work (sender on the host, receiver in work, into ~/Incoming/host/, a home
#        image) against cp FILE to a host folder followed by sync, and the copy also followed by sync.
# BENCH_DATA_ROUNDS rounds (default 5), alternating; each figure is the median time; ratio = bulkhead
# time / peer time (1.0 = as fast; targets: volume within 1/0.95, copy within 1/0.8). The headline is
# the mapping's own cost (the same dd on the host, through an idmapped bind of the folder made as the
# broker makes a volume's, bench/idmap_bind.py, and through the plain path); the others are in the notes. Prints one JSON line in bench/lib.bash's format.
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
IDMAPPED=$BENCH_ROOT/idmapped
mkdir -p "$HOSTDIR" "$IDMAPPED"
chown 5000:5000 "$HOSTDIR" # its on-disk owner, shown to root through the idmapped mount
# The same folder through an idmapped mount, as a volume is (root writes as on-disk 5000 there).
python3 "$bench_dir/idmap_bind.py" "$HOSTDIR" "$IDMAPPED" 5000 0 || bench_fail "data: idmapped mount"
unmount_idmapped() { umount "$IDMAPPED" 2>/dev/null || true; }
bench_extra_cleanup+=(unmount_idmapped)
dd if=/dev/urandom of="$BENCH_ROOT/source.bin" bs=1M count=1024 status=none

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print((float(sys.argv[2]) - float(sys.argv[1])) * 1000)" "$1" "$2"; }
timed() { local a b; a=$(now); "$@" >/dev/null 2>&1; b=$(now); elapsed "$a" "$b"; }
# dd's own figure (its last line: "..., 0.0801 s, 13.4 GB/s"), in ms: the transfer alone, without
# the few ms of starting a command in the compartment.
# The best of three runs of a read (a cached read is short: one preemption on this shared machine
# doubles it).
best3() { local a b c; a=$(dd_ms "$@"); b=$(dd_ms "$@"); c=$(dd_ms "$@"); python3 -c 'import sys; print(min(map(float, sys.argv[1:])))' "$a" "$b" "$c"; }
dd_ms() { "$@" 2>&1 >/dev/null | sed -n 's/.*copied, \([0-9.e-]*\) s,.*/\1/p' | tail -1 | python3 -c 'import sys; print(float(sys.stdin.read()) * 1000)'; }

w_ours=() w_peer=() r_ours=() r_peer=() c_ours=() c_peer=() w_idm=() r_idm=() w_plain=() r_plain=()
for _ in $(seq "$ROUNDS"); do
    "$BULKHEAD" run --root "$BENCH_ROOT" work -- rm -f Documents/big
    rm -f "$HOSTDIR/big"
    sync
    w_ours+=("$(dd_ms "$BULKHEAD" run --root "$BENCH_ROOT" work -- dd if=/dev/zero of=Documents/big bs=1M count=1024 conv=fsync)")
    w_peer+=("$(dd_ms dd if=/dev/zero of="$HOSTDIR/big" bs=1M count=1024 conv=fsync)")
    # Read twice, the second from the page cache: the mount's own cost, not the disk's.
    "$BULKHEAD" run --root "$BENCH_ROOT" work -- dd if=Documents/big of=/dev/null bs=1M 2>/dev/null
    r_ours+=("$(best3 "$BULKHEAD" run --root "$BENCH_ROOT" work -- dd if=Documents/big of=/dev/null bs=1M)")
    dd if="$HOSTDIR/big" of=/dev/null bs=1M 2>/dev/null
    r_peer+=("$(best3 dd if="$HOSTDIR/big" of=/dev/null bs=1M)")
    # The mapping alone: the same dd on the host, through the idmapped mount and not.
    rm -f "$HOSTDIR/big"; sync
    w_idm+=("$(dd_ms dd if=/dev/zero of="$IDMAPPED/big" bs=1M count=1024 conv=fsync)")
    dd if="$IDMAPPED/big" of=/dev/null bs=1M 2>/dev/null
    r_idm+=("$(best3 dd if="$IDMAPPED/big" of=/dev/null bs=1M)")
    rm -f "$HOSTDIR/big"; sync
    w_plain+=("$(dd_ms dd if=/dev/zero of="$HOSTDIR/big" bs=1M count=1024 conv=fsync)")
    dd if="$HOSTDIR/big" of=/dev/null bs=1M 2>/dev/null
    r_plain+=("$(best3 dd if="$HOSTDIR/big" of=/dev/null bs=1M)")
    "$BULKHEAD" run --root "$BENCH_ROOT" work -- rm -rf Incoming/host
    rm -f "$HOSTDIR/copy.bin"
    sync
    c_ours+=("$(timed sh -c "'$BULKHEAD' copy --root '$BENCH_ROOT' '$BENCH_ROOT/source.bin' work && sync")")
    c_peer+=("$(timed sh -c "cp '$BENCH_ROOT/source.bin' '$HOSTDIR/copy.bin' && sync")")
done

python3 - "$(IFS=,; echo "${w_ours[*]}")" "$(IFS=,; echo "${w_peer[*]}")" "$(IFS=,; echo "${r_ours[*]}")" \
    "$(IFS=,; echo "${r_peer[*]}")" "$(IFS=,; echo "${c_ours[*]}")" "$(IFS=,; echo "${c_peer[*]}")" \
    "$(IFS=,; echo "${w_idm[*]}")" "$(IFS=,; echo "${r_idm[*]}")" "$(IFS=,; echo "${w_plain[*]}")" "$(IFS=,; echo "${r_plain[*]}")" <<'PY'
import json, statistics, sys
w_ours, w_peer, r_ours, r_peer, c_ours, c_peer, w_idm, r_idm, w_plain, r_plain = ([float(x) for x in a.split(",")] for a in sys.argv[1:11])
def side(label, values, command):
    return {"label": label, "command": command, "median_ms": statistics.median(values), "mean_ms": statistics.mean(values),
            "stddev_ms": statistics.stdev(values) if len(values) > 1 else 0.0, "min_ms": min(values),
            "max_ms": max(values), "runs": len(values)}
m = statistics.median
mib_s = lambda ms: 1024 / (ms / 1000)
notes = [
    "ratio = bulkhead time / peer time (1.0 = as fast); volume figures are dd's own (the transfer, not the command's start); the copy is end to end",
    f"the mapping alone, on the host: read 1 GiB (cache) through the idmapped mount {m(r_idm):.1f} ms, plain {m(r_plain):.1f} ms (throughput {m(r_plain)/m(r_idm):.2f}); write (fsync) {m(w_idm):.0f} vs {m(w_plain):.0f} ms (throughput {m(w_plain)/m(w_idm):.2f})",
    f"inside the compartment (the sandbox's own cost included: its seccomp filter on every read and write):",
    f"write 1 GiB (conv=fsync): volume {m(w_ours):.0f} ms ({mib_s(m(w_ours)):.0f} MiB/s), host folder {m(w_peer):.0f} ms ({mib_s(m(w_peer)):.0f} MiB/s), ratio {m(w_ours)/m(w_peer):.2f}",
    f"read 1 GiB (page cache): volume {m(r_ours):.0f} ms, host folder {m(r_peer):.0f} ms, ratio {m(r_ours)/m(r_peer):.2f} (throughput {m(r_peer)/m(r_ours):.2f} of the host's; target 0.95)",
    f"copy 1 GiB host -> compartment: bulkhead copy + sync {m(c_ours):.0f} ms ({mib_s(m(c_ours)):.0f} MiB/s), cp + sync {m(c_peer):.0f} ms ({mib_s(m(c_peer)):.0f} MiB/s); throughput {m(c_peer)/m(c_ours):.2f} of cp's (target 0.8)",
]
print(json.dumps({"figure": "data: 1 GiB read through an idmapped mount, from the page cache (dd's own time)",
                  "bulkhead": side("bulkhead", r_idm, "dd if=IDMAPPED/big"),
                  "peer": side("plain path", r_plain, "dd if=HOSTDIR/big"), "ratio": m(r_idm) / m(r_plain), "notes": notes}))
PY
