#!/usr/bin/env bash
# The network of compartments end to end, against a real broker under a temporary --root. Every
# packet stays on this machine: the "internet" is a namespace this test makes (198.18.0.0/24, the
# benchmark range), reached through a veth the test makes and the provider takes as its uplink
# (uplink = "IFNAME"); the host's own addresses, routes and sysctls are not touched.
#   sink ns: sink0 198.18.0.1/24 -- veth -- bhtup<pid> 198.18.0.2/24, moved into sys-net as its uplink
# Covered: reachability through the provider, a port-limited list and its implicit deny (rejected, not
# timed out), a client with no list, a compartment with no network, DNS through two DNATs, root inside
# a client (and a host root in the client's namespace, stronger than any compartment) trying to flush
# rules, change its address or MAC, reach another client, the provider or the gateway; rules changed by
# apply without a restart; provider stop (clients offline at once) and start (back); a broker killed
# with -9 and restarted (rules and links stay); a disposable of a template; what ls says; providers in a
# chain; uplink = "host" (a test-made namespace the host routes to; the host itself unreachable).
# Usage: net_test.sh PATH/TO/bulkhead
set -u
BULKHEAD=$(realpath "${1:?usage: net_test.sh PATH/TO/bulkhead}")
ROOT=$(mktemp -d /tmp/bulkhead-net-test-XXXXXX)
LOG=$ROOT/daemon.log
DAEMON=
export BULKHEAD_SOCKET=$ROOT/run/admin.sock
SINK=bht-sink-$$
UPLINK=bhtup$$
SERVERS=()
SINK2=bht-sink2-$$
HOSTLINK=bhth$$
FORWARD=$(cat /proc/sys/net/ipv4/ip_forward) # a host uplink sets it: restored at the end

cleanup() {
    stop_daemon
    for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null; done
    ip netns del "$SINK" 2>/dev/null
    ip netns del "$SINK2" 2>/dev/null
    ip link del "$UPLINK" 2>/dev/null
    ip link del "$HOSTLINK" 2>/dev/null
    echo "$FORWARD" >/proc/sys/net/ipv4/ip_forward
    for ns in "$ROOT"/run/netns/*; do
        [[ -e $ns ]] && umount -l "$ns" 2>/dev/null
    done
    rm -rf "$ROOT"
}
trap cleanup EXIT

# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
B=$BULKHEAD

make_uplink() { # the test's "internet": a namespace with servers, and the veth the provider takes
    ip netns del "$SINK" 2>/dev/null
    ip netns add "$SINK"
    ip link add "$UPLINK" type veth peer name sink0 netns "$SINK"
    ip -n "$SINK" addr add 198.18.0.1/24 dev sink0
    ip -n "$SINK" link set sink0 up
    ip -n "$SINK" link set lo up
    ip addr add 198.18.0.2/24 dev "$UPLINK"
    ip link set "$UPLINK" up
    # TCP echo servers on 8080 and 8081, a "resolver" on udp 53 that answers every query with "pong".
    ip netns exec "$SINK" python3 -c '
import socket, threading
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("198.18.0.1", port)); s.listen(64)
    while True:
        c, a = s.accept(); c.sendall(("hello from %d to %s\n" % (port, a[0])).encode()); c.close()
for p in (8080, 8081):
    threading.Thread(target=tcp, args=(p,), daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("198.18.0.1", 53))
while True:
    d, a = u.recvfrom(512); u.sendto(b"pong " + a[0].encode(), a)
' &
    SERVERS+=($!)
    sleep 0.3
}

mkdir -p "$ROOT/etc"
write_config() { # RULES_FOR_WORK
    cat >"$ROOT/etc/system.toml" <<EOF
[system]
default_disposable = "untrusted"

[templates.host]
kind = "host"

[compartments.sys-net]
label = "orange"
provides_network = true
uplink = "$UPLINK"
dns = "198.18.0.1"
firewall.work = [$1]

[compartments.work]
label = "blue"
network = "sys-net"

[compartments.other]
label = "green"
network = "sys-net"

[compartments.vault]
label = "black"

[compartments.untrusted]
label = "red"
disposable_template = true
network = "sys-net"

[compartments.sys-vpn]
label = "purple"
provides_network = true
network = "sys-net"

[compartments.chained]
label = "yellow"
network = "sys-vpn"

[compartments.sys-host]
label = "orange"
provides_network = true

[compartments.hostclient]
label = "gray"
network = "sys-host"
EOF
}

# connect ADDRESS PORT: what a TCP connection gets, as one word (the first line received, or the error).
CONNECT='
import socket, sys, errno
s = socket.socket(); s.settimeout(5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print(s.makefile().readline().strip() or "connected")
except socket.timeout: print("timeout")
except OSError as e: print(errno.errorcode.get(e.errno, str(e)))
'
connect() { # COMPARTMENT ADDRESS PORT
    "$B" run "$1" -- python3 -c "$CONNECT" "$2" "$3" 2>&1
}
DNS='
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
try:
    u.sendto(b"query", (sys.argv[1], 53)); print(u.recv(100).decode())
except OSError as e: print(type(e).__name__)
'

expect() { # NAME WANTED_PATTERN GOT
    if [[ $3 == $2 ]]; then pass "$1 ($3)"; else fail "$1: got '$3', wanted $2"; fi
}

make_uplink
write_config '"allow dns", "allow tcp 8080 to 198.18.0.1", "deny"'
start_daemon --config "$ROOT/etc/system.toml"
check provider-starts 0 "" -- "$B" start sys-net
ip link show "$UPLINK" >/dev/null 2>&1 && fail "uplink-moved-out-of-the-host" || pass "uplink-moved-out-of-the-host"
check work-starts 0 "" -- "$B" start work
check other-starts 0 "" -- "$B" start other

expect work-reaches-allowed-port "hello from 8080 to 198.18.0.2" "$(connect work 198.18.0.1 8080)"
start=$(date +%s%N)
got=$(connect work 198.18.0.1 8081)
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
expect work-denied-other-port-by-implicit-deny "EHOSTUNREACH" "$got"
[[ $got == EHOSTUNREACH ]] && pass "denied-connection-is-rejected-not-timed-out (${elapsed} ms)" || fail "denied-connection-is-rejected-not-timed-out: $got"
expect other-without-a-list-reaches-any-port "hello from 8081 to 198.18.0.2" "$(connect other 198.18.0.1 8081)"
expect vault-has-no-network ENETUNREACH "$(connect vault 198.18.0.1 8080)"
expect dns-through-the-provider "pong 198.18.0.2" "$("$B" run work -- python3 -c "$DNS" 169.254.0.1)"
expect resolv-conf-names-the-gateway "nameserver 169.254.0.1" "$("$B" run work -- cat /etc/resolv.conf)"
[[ $("$B" run vault -- cat /etc/resolv.conf) != *169.254.0.1* ]] && pass "vault-resolv-conf-is-the-hosts" || fail "vault-resolv-conf-is-the-hosts"

# ls and ls --json tell the truth.
expect ls-json-network-state connected "$(json_field work network_state)"
expect ls-json-address "100.64.*" "$(json_field work address)"
expect ls-json-vault-none none "$(json_field vault network_state)"
"$B" ls | grep -E "^work .*connected" >/dev/null && pass "ls-shows-connected" || fail "ls-shows-connected: $("$B" ls)"

# bulkhead net: each client's rules with their counters (the denied 8081 counted at "deny").
net=$("$B" net)
[[ $net == *"work  100.64."*"sys-net (connected)"* && $net == *"allow tcp 8080 to 198.18.0.1"*"packets"* ]] \
    && pass "net-lists-clients-and-rules" || fail "net-lists-clients-and-rules: $net"
end_count=$("$B" net --json | python3 -c 'import json,sys; print(next(r["packets"] for c in json.load(sys.stdin) if c["name"] == "work" for r in c["rules"] if r["rule"] == "deny"))')
[[ $end_count =~ ^[0-9]+$ && $end_count -ge 1 ]] && pass "net-counts-the-deny ($end_count)" || fail "net-counts-the-deny: $end_count"

# ---- root inside a client, and a host root in its namespace (what a kernel exploit would give) ----
WORK_ADDR=$(json_field work address)
OTHER_ADDR=$(json_field other address)
check root-inside-cannot-flush-rules 0 "" -- "$B" run --user root work -- sh -c '! nft flush ruleset 2>/dev/null'
check root-inside-cannot-change-its-address 0 "" -- "$B" run --user root work -- sh -c '! ip addr add 100.64.9.9/32 dev eth0 2>/dev/null'
expect work-cannot-reach-another-client "EHOSTUNREACH" "$(connect work "$OTHER_ADDR" 8080)"
expect work-cannot-reach-the-provider "EHOSTUNREACH" "$(connect work 100.65.0.1 22)"
got=$(connect work 169.254.0.1 22)
[[ $got =~ ^(ECONNREFUSED|EHOSTUNREACH)$ ]] && pass "work-cannot-reach-the-gateway ($got)" || fail "work-cannot-reach-the-gateway: $got"
WORK_PID=$(json_field work pid)
in_work() { nsenter --net="/proc/$WORK_PID/ns/net" "$@"; }
in_work nft flush ruleset
expect host-root-flushing-the-clients-own-rules-changes-nothing "EHOSTUNREACH" "$(connect work 198.18.0.1 8081)"
# A spoofed source address: the packets are dropped at the firewall (the connection times out).
in_work ip addr add 100.64.9.9/32 dev eth0
got=$(in_work python3 -c '
import socket
s = socket.socket(); s.settimeout(2); s.bind(("100.64.9.9", 0))
try: s.connect(("198.18.0.1", 8080)); print("connected")
except OSError as e: print(type(e).__name__)')
[[ $got =~ ^(timeout|TimeoutError)$ ]] && pass "spoofed-source-address-dropped ($got)" || fail "spoofed-source-address-dropped: $got"
in_work ip addr del 100.64.9.9/32 dev eth0
in_work ip link set eth0 address 0a:b3:ec:00:ff:ff
expect spoofed-mac-dropped "timeout" "$(connect work 198.18.0.1 8080)"
WORK_MAC=$(printf '0a:b3:ec:00:%02x:%02x' $(( ($(echo "$WORK_ADDR" | cut -d. -f3) * 256 + $(echo "$WORK_ADDR" | cut -d. -f4) - 2) >> 8 )) $(( ($(echo "$WORK_ADDR" | cut -d. -f4) - 2) & 255 )))
in_work ip link set eth0 address "$WORK_MAC"
expect own-mac-back-reaches-again "hello from 8080 to 198.18.0.2" "$(connect work 198.18.0.1 8080)"

# ---- apply changes a running client's rules in place ----
write_config '"allow dns", "allow tcp 8080-8081 to 198.18.0.0/24", "deny"'
check apply-firewall-change 0 "firewall rules of its running clients updated" -- "$B" apply "$ROOT/etc/system.toml"
[[ $WORK_PID =~ ^[0-9]+$ && $(json_field work pid) == "$WORK_PID" ]] && pass "apply-did-not-restart-work" || fail "apply-did-not-restart-work: $WORK_PID -> $(json_field work pid)"
expect new-rule-in-force-without-restart "hello from 8081 to 198.18.0.2" "$(connect work 198.18.0.1 8081)"

# ---- a disposable of untrusted (no list: all outbound) ----
expect disposable-reaches-the-sink "hello from 8080 to 198.18.0.2" "$("$B" run --disposable untrusted -- python3 -c "$CONNECT" 198.18.0.1 8080 2>&1)"

# ---- the broker killed with -9: links and rules stay; a new broker adopts them ----
kill -9 "$DAEMON"
wait "$DAEMON" 2>/dev/null
expect rules-hold-without-a-broker "hello from 8080 to 198.18.0.2" "$(nsenter --net="/proc/$WORK_PID/ns/net" python3 -c "$CONNECT" 198.18.0.1 8080)"
start_daemon --config "$ROOT/etc/system.toml"
expect adopted-client-still-connected connected "$(json_field work network_state)"
expect adopted-client-rules-still-deny "EHOSTUNREACH" "$(connect work 198.18.0.1 9)"

# ---- provider stop: clients offline at once (fail closed); start: back ----
check provider-stops 0 "" -- "$B" stop sys-net
got=$(connect work 198.18.0.1 8080)
[[ $got =~ ^(EHOSTUNREACH|ENETUNREACH|timeout)$ ]] && pass "client-offline-while-provider-down ($got)" || fail "client-offline-while-provider-down: $got"
expect ls-says-provider-down "provider down" "$(json_field work network_state)"
make_uplink # the test's veth went with the provider's namespace
check provider-starts-again 0 "" -- "$B" start sys-net
expect client-back-when-provider-starts "hello from 8080 to 198.18.0.2" "$(connect work 198.18.0.1 8080)"

# ---- providers chain: chained -> sys-vpn -> sys-net -> the sink ----
check chained-provider-starts 0 "" -- "$B" start sys-vpn
check chained-client-starts 0 "" -- "$B" start chained
expect chained-client-reaches-the-sink "hello from 8080 to 198.18.0.2" "$(connect chained 198.18.0.1 8080)"

# ---- uplink = "host": masqueraded by the host to a test-made namespace the host routes to; nothing
# from a provider or its clients reaches the host itself ----
ip netns add "$SINK2"
ip link add "$HOSTLINK" type veth peer name sink0 netns "$SINK2"
ip -n "$SINK2" addr add 198.18.1.1/24 dev sink0
ip -n "$SINK2" link set sink0 up
ip addr add 198.18.1.2/24 dev "$HOSTLINK"
ip link set "$HOSTLINK" up
ip netns exec "$SINK2" python3 -c '
import socket
s = socket.socket(); s.bind(("198.18.1.1", 8080)); s.listen(8)
while True:
    c, a = s.accept(); c.sendall(("hello from the host side to %s\n" % a[0]).encode()); c.close()' &
SERVERS+=($!)
python3 -c '
import socket
s = socket.socket(); s.bind(("198.18.1.2", 8099)); s.listen(8)
while True:
    c, a = s.accept(); c.sendall(b"host service\n"); c.close()' &
SERVERS+=($!)
sleep 0.3
check host-uplink-provider-starts 0 "" -- "$B" start sys-host
check host-uplink-client-starts 0 "" -- "$B" start hostclient
expect host-uplink-client-reaches-a-host-routed-namespace "hello from the host side to 198.18.1.2" "$(connect hostclient 198.18.1.1 8080)"
got=$(connect hostclient 198.18.1.2 8099)
[[ $got != "host service" ]] && pass "host-uplink-client-cannot-reach-the-host ($got)" || fail "host-uplink-client-cannot-reach-the-host: $got"
got=$("$B" run sys-host -- python3 -c "$CONNECT" 198.18.1.2 8099 2>&1)
[[ $got != "host service" ]] && pass "host-uplink-provider-cannot-reach-the-host ($got)" || fail "host-uplink-provider-cannot-reach-the-host: $got"
HOST_TABLE=$(nft list tables | grep -o "bulkhead-[0-9a-f]*" | head -1)
[[ -n $HOST_TABLE ]] && pass "host-table-while-a-host-uplink-runs ($HOST_TABLE)" || fail "host-table-while-a-host-uplink-runs"
check host-uplink-client-stops 0 "" -- "$B" stop hostclient
check host-uplink-provider-stops 0 "" -- "$B" stop sys-host
[[ -n $HOST_TABLE ]] && ! nft list table ip "$HOST_TABLE" >/dev/null 2>&1 && pass "host-table-removed-with-the-last-host-uplink" || fail "host-table-removed-with-the-last-host-uplink"

# ---- the embedded default system: a disposable of untrusted reaches a server beyond sys-net (started
# with it, uplink = "host") and vault reaches nothing ----
ROOT2=$ROOT/default
mkdir -p "$ROOT2"
"$B" daemon --root "$ROOT2" >>"$ROOT2/daemon.log" 2>&1 &
DAEMON2=$!
for _ in $(seq 100); do "$B" ls --root "$ROOT2" >/dev/null 2>&1 && break; sleep 0.1; done
got=$("$B" run --root "$ROOT2" --disposable -- python3 -c "$CONNECT" 198.18.1.1 8080 2>&1)
expect default-system-disposable-reaches-beyond-sys-net "hello from the host side to 198.18.1.2" "$got"
got=$("$B" run --root "$ROOT2" vault -- python3 -c "$CONNECT" 198.18.1.1 8080 2>&1)
expect default-system-vault-reaches-nothing ENETUNREACH "$got"
for name in $("$B" ls --root "$ROOT2" --json | python3 -c 'import json,sys; [print(c["name"]) for c in json.load(sys.stdin)["compartments"] if c["state"] != "stopped"]'); do
    "$B" stop --root "$ROOT2" "$name" >/dev/null 2>&1
done
kill "$DAEMON2"
wait "$DAEMON2" 2>/dev/null

# ---- teardown leaves nothing ----
stop_compartments
left=$(ls "$ROOT/run/netns" 2>/dev/null)
[[ -z $left ]] && pass "no-firewall-namespace-left" || fail "no-firewall-namespace-left: $left"
links=$(ip -br link | awk '{print $1}' | grep -E '^bh[0-9a-f]{4}u' || true)
[[ -z $links ]] && pass "no-host-uplink-link-left" || fail "no-host-uplink-link-left: $links"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
