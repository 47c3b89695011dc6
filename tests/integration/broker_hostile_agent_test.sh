#!/usr/bin/env bash
# The broker treats every byte from an agent as hostile: a compartment whose PID 1 sends a bad
# frame is disconnected and stopped (and the fact logged); the broker and the other compartments
# carry on. Runs a broker whose bulkhead-agent is tests/integration/hostile_agent.cpp.
# Usage: broker_hostile_agent_test.sh PATH/TO/bulkhead PATH/TO/hostile_agent
set -u
ROOT=$(mktemp -d /tmp/bulkhead-hostile-test-XXXXXX)
mkdir "$ROOT/bin"
cp "${1:?usage: broker_hostile_agent_test.sh BULKHEAD HOSTILE_AGENT}" "$ROOT/bin/bulkhead"
cp "${2:?usage: broker_hostile_agent_test.sh BULKHEAD HOSTILE_AGENT}" "$ROOT/bin/bulkhead-agent"
B=$ROOT/bin/bulkhead
LOG=$ROOT/daemon.log
export BULKHEAD_SOCKET=$ROOT/run/admin.sock
passed=0
failed=0
DAEMON=
attacks="garbage oversize badversion nohello unknownid fdflood badstatus notpty"

cleanup() {
    for name in $attacks impostor quiet; do "$B" stop "$name" >/dev/null 2>&1; done
    [[ -n $DAEMON ]] && { kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null; }
    rm -rf "$ROOT"
}
trap cleanup EXIT
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
state_of() {
    "$B" ls --json | python3 -c "import json,sys; print(next(c['state'] for c in json.load(sys.stdin)['compartments'] if c['name'] == '$1'))"
}

{
    echo '[templates.host]'
    echo 'kind = "host"'
    for name in $attacks impostor quiet; do
        printf '[compartments.%s]\nlabel = "red"\n' "$name"
    done
} >"$ROOT/system.toml"
"$B" daemon --root "$ROOT" --config "$ROOT/system.toml" >"$LOG" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do "$B" ls >/dev/null 2>&1 && break; sleep 0.1; done
"$B" ls >/dev/null || { echo "the daemon did not come up:"; cat "$LOG"; exit 1; }

"$B" start quiet >/dev/null || fail "start quiet"
for attack in $attacks; do
    if [[ $attack == notpty ]]; then
        out=$("$B" run --tty notpty -- true 2>&1)
        code=$?
        [[ $code -eq 125 ]] && pass "notpty: the --tty run fails with 125" || fail "notpty: run exit $code: $out"
    else
        "$B" start "$attack" >/dev/null || { fail "$attack: start"; continue; }
    fi
    for _ in $(seq 50); do [[ $(state_of "$attack") == stopped ]] && break; sleep 0.1; done
    if [[ $(state_of "$attack") == stopped ]] && grep -q "$attack: agent misbehaved" "$LOG" && [[ ! -e $ROOT/run/compartments/$attack ]]; then
        pass "$attack: disconnected, stopped, logged"
    else
        fail "$attack: state $(state_of "$attack"); log: $(grep "$attack" "$LOG")"
    fi
    kill -0 "$DAEMON" 2>/dev/null && [[ $(state_of quiet) == running ]] && pass "$attack: the broker and other compartments carry on" \
        || fail "$attack: broker or quiet compartment affected"
done

"$B" start impostor >/dev/null
sleep 0.5
# Any other process of a compartment is a caller: its hello is not a call, and it is cut off.
if grep -q "impostor: a caller (pid [0-9]*) sent a record that is not a call" "$LOG" \
    && [[ $(state_of impostor) == starting ]]; then
    pass "impostor: a process that is not PID 1 is not taken for the agent"
else
    fail "impostor: state $(state_of impostor); log: $(grep impostor "$LOG")"
fi
echo "broker_hostile_agent_test: $passed passed, $failed failed"
((failed == 0))
