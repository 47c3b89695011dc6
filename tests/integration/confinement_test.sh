#!/usr/bin/env bash
# The broker confines itself (issue 13, item 8): read from the running broker's /proc status, and
# from what it starts (a compartment's PID 1 inherits the broker's filter under its own).
# Usage: confinement_test.sh PATH/TO/bulkhead
set -u
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
broker_test_setup confinement "${1:-}"

mkdir -p "$ROOT/etc"
cat >"$ROOT/etc/system.toml" <<'EOF'
[templates.host]
kind = "host"

[compartments.work]
label = "blue"
EOF
start_daemon --config "$ROOT/etc/system.toml"
status=/proc/$DAEMON/status
field() { awk -v key="$1:" '$1 == key {print $2}' "$status"; }

[[ $(field NoNewPrivs) == 1 ]] && pass "broker-no-new-privs" || fail "broker-no-new-privs: $(field NoNewPrivs)"
[[ $(field Seccomp) == 2 ]] && pass "broker-seccomp-filter" || fail "broker-seccomp-filter: Seccomp $(field Seccomp)"
[[ $(field CapAmb) == 0000000000000000 && $(field CapInh) == 0000000000000000 ]] && pass "broker-no-ambient-or-inheritable" \
    || fail "broker-no-ambient-or-inheritable: $(field CapAmb) $(field CapInh)"
has_cap() { # SET BIT
    local mask=$((16#$(field "$1")))
    (( (mask >> $2) & 1 ))
}
# Dropped from the bounding set, the permitted and the effective set.
for cap in NET_RAW:13 IPC_LOCK:14 SYS_MODULE:16 SYS_RAWIO:17 SYS_PACCT:20 SYS_BOOT:22 SYS_NICE:23 SYS_TIME:25 \
    SYS_TTY_CONFIG:26 MKNOD:27 LEASE:28 AUDIT_WRITE:29 AUDIT_CONTROL:30 MAC_OVERRIDE:32 MAC_ADMIN:33 SYSLOG:34 \
    WAKE_ALARM:35 BLOCK_SUSPEND:36 AUDIT_READ:37 PERFMON:38 BPF:39 CHECKPOINT_RESTORE:40 LINUX_IMMUTABLE:9 \
    NET_BIND_SERVICE:10 NET_BROADCAST:11 IPC_OWNER:15 FSETID:4; do
    name=${cap%%:*} bit=${cap##*:}
    if has_cap CapBnd "$bit" || has_cap CapPrm "$bit" || has_cap CapEff "$bit"; then
        fail "broker-without-CAP_$name"
    else
        pass "broker-without-CAP_$name"
    fi
done
# Kept, because the broker uses them (docs/broker.md says what for).
for cap in SYS_ADMIN:21 NET_ADMIN:12 SETUID:7 SETGID:6 CHOWN:0 KILL:5; do
    name=${cap%%:*} bit=${cap##*:}
    has_cap CapEff "$bit" && pass "broker-keeps-CAP_$name" || fail "broker-keeps-CAP_$name"
done

# What it starts inherits it: a compartment's PID 1 runs under two filters (the broker's and its own).
check work-runs-under-the-confined-broker 0 "ok" -- "$B" run work -- echo ok
pid1=$(json_field work pid)
filters=$(awk '$1 == "Seccomp_filters:" {print $2}' "/proc/$pid1/status")
[[ $filters =~ ^[0-9]+$ && $filters -ge 2 ]] && pass "compartment-inherits-the-brokers-filter ($filters filters)" \
    || fail "compartment-inherits-the-brokers-filter: $filters"

echo "confinement_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
