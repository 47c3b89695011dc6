#!/bin/bash
# Figure "network": TCP throughput from a client compartment through its network compartment to a
# server, side by side with a direct veth between two namespaces, in the same run; also connection
# setup and what a network costs a disposable's start.
#
# bulkhead: a broker with sys-net (uplink = a veth this script makes, into a test-made "sink"
# namespace at 198.18.0.1) and the client `work` behind it with a firewall list of 20 rules whose
# last one allows the server: client -> firewall namespace (nftables: anti-spoofing, the client's
# chain) -> sys-net (masquerade) -> sink, three veth hops. `iperf3 -c` runs inside work.
# peer: iperf3 -c in a namespace joined to a second sink by one veth pair (no NAT, no rules).
# slirp4netns (a user-space stack), measured the same way when installed: a namespace whose only way
# out is the stack, to the sink the host routes to (before sys-net takes the uplink).
# Every packet stays in namespaces this script makes (198.18.0.0/15); nothing leaves the machine.
#
# Each side runs `iperf3 -t BENCH_NET_SECONDS` BENCH_NET_ROUNDS times, alternating; the figure is the
# median Gbit/s; ratio = bulkhead / peer (above 0.8 is the target; higher is better here).
# Prints one JSON line in bench/lib.bash's format with "unit": "Gbit/s".
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require iperf3 python3 ip
[ "$(id -u)" -eq 0 ] || bench_fail "network: the broker needs root"
ROUNDS=${BENCH_NET_ROUNDS:-5}
SECONDS_EACH=${BENCH_NET_SECONDS:-3}
tag=$$
SINK=bhb-sink-$tag
DSINK=bhb-dsink-$tag
DCLIENT=bhb-dclient-$tag
UPLINK=bhbup$tag
ACCEPTERS=()
cleanup_net() {
    for pid in "${ACCEPTERS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in $(pgrep -f "iperf3 -s -B 198.18.0.1 -p 52${tag: -2}" || true); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$SINK" 2>/dev/null || true
    ip netns del "$DSINK" 2>/dev/null || true
    ip netns del "$DCLIENT" 2>/dev/null || true
    ip link del "$UPLINK" 2>/dev/null || true
}
bench_extra_cleanup+=(cleanup_net)
PORT=52${tag: -2}

ip netns add "$SINK"
ip link add "$UPLINK" type veth peer name sink0 netns "$SINK"
ip -n "$SINK" addr add 198.18.0.1/24 dev sink0
ip -n "$SINK" link set sink0 up
ip -n "$SINK" link set lo up
ip addr add 198.18.0.2/24 dev "$UPLINK"
ip link set "$UPLINK" up
ip netns exec "$SINK" iperf3 -s -B 198.18.0.1 -p "$PORT" -D
ACCEPT='
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("198.18.0.1", 5399)); s.listen(128)
while True:
    s.accept()[0].close()'
ip netns exec "$SINK" python3 -c "$ACCEPT" &
ACCEPTERS=($!)

# The peer: a client namespace and a sink joined by one veth.
ip netns add "$DSINK"
ip netns add "$DCLIENT"
ip -n "$DCLIENT" link add eth0 type veth peer name sink0 netns "$DSINK"
ip -n "$DSINK" addr add 198.18.0.1/24 dev sink0
ip -n "$DCLIENT" addr add 198.18.0.2/24 dev eth0
for ns in "$DSINK" "$DCLIENT"; do
    ip -n "$ns" link set lo up
done
ip -n "$DSINK" link set sink0 up
ip -n "$DCLIENT" link set eth0 up
ip netns exec "$DSINK" iperf3 -s -B 198.18.0.1 -p "$PORT" -D
ip netns exec "$DSINK" python3 -c "$ACCEPT" &
ACCEPTERS+=($!)

gbits() { python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)'; }

# slirp4netns, while the uplink veth is still the host's: a namespace whose only way out is slirp's
# user-space stack, to the same sink (the host routes to it through that veth).
slirp=()
if command -v slirp4netns >/dev/null; then
    unshare -n sleep 600 &
    HOLDER=$!
    sleep 0.3
    slirp4netns --configure --mtu=65520 --disable-host-loopback "$HOLDER" tap0 >/dev/null 2>&1 &
    SLIRP=$!
    bench_extra_cleanup+=("kill $SLIRP $HOLDER")
    sleep 1
    for _ in $(seq "$ROUNDS"); do
        slirp+=("$(nsenter -t "$HOLDER" -n iperf3 -c 198.18.0.1 -p "$PORT" -t "$SECONDS_EACH" -J | gbits)")
    done
    kill "$SLIRP" "$HOLDER" 2>/dev/null || true
fi

rules='"allow dns"'
for i in $(seq 19); do rules+=", \"deny tcp $((1000 + i)) to 203.0.113.$i\""; done
rules+=", \"allow tcp $PORT to 198.18.0.1\", \"allow tcp 5399 to 198.18.0.1\""
bench_broker_start "[system]
default_disposable = \"untrusted\"

[templates.host]
kind = \"host\"

[compartments.sys-net]
label = \"orange\"
provides_network = true
uplink = \"$UPLINK\"
firewall.work = [$rules]

[compartments.work]
label = \"blue\"
network = \"sys-net\"

[compartments.untrusted]
label = \"red\"
disposable_template = true
network = \"none\"

[compartments.untrusted-net]
label = \"red\"
disposable_template = true
network = \"sys-net\""
"$BULKHEAD" start --root "$BENCH_ROOT" sys-net >/dev/null
"$BULKHEAD" start --root "$BENCH_ROOT" work >/dev/null
sleep 0.5

ours=()
peer=()
for _ in $(seq "$ROUNDS"); do
    ours+=("$("$BULKHEAD" run --root "$BENCH_ROOT" work -- iperf3 -c 198.18.0.1 -p "$PORT" -t "$SECONDS_EACH" -J | gbits)")
    peer+=("$(ip netns exec "$DCLIENT" iperf3 -c 198.18.0.1 -p "$PORT" -t "$SECONDS_EACH" -J | gbits)")
done

# Connection setup: 200 connect + first byte, inside work and in the peer's client namespace.
CONNECTS='
import socket, sys, time, statistics
times = []
for _ in range(200):
    start = time.perf_counter()
    s = socket.create_connection(("198.18.0.1", int(sys.argv[1])))
    times.append((time.perf_counter() - start) * 1000)
    s.close()
print(f"{statistics.median(times):.3f}")'
connect_ours=$("$BULKHEAD" run --root "$BENCH_ROOT" work -- python3 -c "$CONNECTS" 5399)
connect_peer=$(ip netns exec "$DCLIENT" python3 -c "$CONNECTS" 5399)

# What a network costs a disposable's start, and that one without a network pays nothing for it.
start_raw=$BENCH_RAW_DIR/network-start.json
hyperfine -N --style basic --warmup 5 --runs "${BENCH_NET_START_RUNS:-60}" --export-json "$start_raw" \
    --command-name "no network" "$BULKHEAD run --root $BENCH_ROOT --disposable untrusted -- true" \
    --command-name "behind sys-net" "$BULKHEAD run --root $BENCH_ROOT --disposable untrusted-net -- true" >&2

python3 - "$start_raw" "$connect_ours" "$connect_peer" "${ours[@]}" -- "${peer[@]}" -- "${slirp[@]}" <<'EOF'
import json, statistics, sys
raw, connect_ours, connect_peer = sys.argv[1:4]
rest = sys.argv[4:]
first = rest.index("--")
second = rest.index("--", first + 1)
ours = [float(x) for x in rest[:first]]
peer = [float(x) for x in rest[first + 1:second]]
slirp = [float(x) for x in rest[second + 1:]]
def side(label, values, command):
    return {"label": label, "command": command, "median_ms": statistics.median(values), "mean_ms": statistics.mean(values),
            "stddev_ms": statistics.stdev(values) if len(values) > 1 else 0.0, "min_ms": min(values),
            "max_ms": max(values), "runs": len(values)}
starts = {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(raw))["results"]}
details = [
    "ratio here = bulkhead Gbit/s / peer Gbit/s: higher is better (target 0.8)",
    f"path: client -> firewall namespace (anti-spoofing set, a 20-rule chain matched at its last rule) -> sys-net (masquerade) -> sink: three veth hops",
    f"connection setup (connect, median of 200): through sys-net {float(connect_ours):.3f} ms, direct veth {float(connect_peer):.3f} ms",
    (f"slirp4netns 1.2 (--mtu=65520), same sink, same run: median {statistics.median(slirp):.2f} Gbit/s; "
     f"bulkhead / slirp4netns = {statistics.median(ours) / statistics.median(slirp):.2f}" if slirp else "slirp4netns not installed"),
    "pasta is not measured: as root it drops to nobody and cannot join a namespace made by root here",
    f"disposable start, run --disposable -- true (median of hyperfine runs): no network {starts['no network']:.2f} ms, behind sys-net {starts['behind sys-net']:.2f} ms (+{starts['behind sys-net'] - starts['no network']:.2f} ms: the veth, the client's rules and addresses through bulkhead-net)",
]
print(json.dumps({"figure": "network: TCP throughput, client through its network compartment (iperf3)", "unit": "Gbit/s",
                  "bulkhead": side("bulkhead", ours, "bulkhead run work -- iperf3 -c SINK"),
                  "peer": side("direct veth", peer, "ip netns exec CLIENT iperf3 -c SINK"),
                  "ratio": statistics.median(ours) / statistics.median(peer), "notes": details, "raw": raw}))
EOF
