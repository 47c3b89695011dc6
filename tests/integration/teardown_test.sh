#!/usr/bin/env bash
# A compartment's stop never makes the broker wait (issue 13, item 12c). The test holds a stopped
# compartment's cgroup busy (a child group inside it, which rmdir refuses with EBUSY as long as it
# is there): the broker used to retry in 10 ms sleeps, serving nobody meanwhile. Now the stop
# returns, the broker answers and runs other compartments while that cgroup is listed as draining
# (ls --json "draining"), and removes it from its event loop as soon as it can.
# Also: a busy agent (its connection full) is waited for, not stopped.
# Usage: teardown_test.sh PATH/TO/bulkhead
set -u
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
broker_test_setup teardown "${1:-}"
HELD=
test_cleanup_extra() {
    [[ -n $HELD ]] && rmdir "$HELD" 2>/dev/null
    return 0
}

mkdir -p "$ROOT/etc"
cat >"$ROOT/etc/system.toml" <<'EOF'
[templates.host]
kind = "host"

[compartments.work]
label = "blue"

[compartments.other]
label = "green"
EOF
start_daemon --config "$ROOT/etc/system.toml"
draining() { "$B" ls --json | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin).get("draining", [])))'; }

check work-starts 0 "" -- "$B" start work
check other-starts 0 "" -- "$B" start other
group=$(sed -n 's/^bulkhead daemon: cgroups under //p' "$LOG" | head -1)/work
[[ -d $group ]] || { fail "work's cgroup $group not found"; exit 1; }
HELD=$group/held
mkdir "$HELD"

check stop-returns-while-the-cgroup-is-held 0 "" -- "$B" stop work
[[ $(draining) == work ]] && pass "held-cgroup-listed-as-draining" || fail "held-cgroup-listed-as-draining: '$(draining)'"
check other-runs-while-work-drains 0 "served" -- "$B" run other -- echo served
[[ -d $group && $(draining) == work ]] && pass "still-draining-after-serving-others" || fail "still-draining-after-serving-others"
check start-while-draining-says-why 125 "still being removed" -- "$B" start work

rmdir "$HELD"
HELD=
for _ in $(seq 100); do
    [[ -z $(draining) ]] && break
    sleep 0.1
done
[[ -z $(draining) && ! -d $group ]] && pass "cgroup-removed-once-free" || fail "cgroup-removed-once-free: '$(draining)'"
grep -q "work: its cgroup is removed now" "$LOG" && pass "removal-logged" || fail "removal-logged"
check work-starts-again 0 "" -- "$B" start work

# ---- a busy agent is not a misbehaving one: with its PID 1 stopped, commands pile up until its
# connection is full; the broker waits for room (it used to stop the compartment as misbehaving) ----
check other-running 0 "" -- "$B" start other
pid1=$(json_field other pid)
kill -STOP "$pid1"
runs=()
for _ in $(seq 400); do
    "$B" run other -- true >/dev/null 2>&1 &
    runs+=($!)
done
for _ in $(seq 100); do grep -q "other: its agent is busy" "$LOG" && break; sleep 0.1; done
grep -q "other: its agent is busy" "$LOG" && pass "full-connection-noticed" || fail "full-connection-noticed (the test did not fill it)"
kill -CONT "$pid1"
ok=0
for run in "${runs[@]}"; do wait "$run" && ok=$((ok + 1)); done
[[ $ok -eq 400 ]] && pass "every-command-of-a-busy-agent-ran" || fail "every-command-of-a-busy-agent-ran: $ok of 400"
! grep -q "other: agent misbehaved" "$LOG" && [[ $(json_field other state) == running ]] \
    && pass "busy-agent-not-stopped" || fail "busy-agent-not-stopped: $(grep "other:" "$LOG" | tail -3)"

echo "teardown_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
