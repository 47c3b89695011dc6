#!/usr/bin/env bash
# Limits by default (issue 13, item 5; DESIGN.md "Limits by default"): with no `memory` a compartment
# gets half the host's RAM, with no `pids` 4096 tasks (RLIMIT_NPROC too), "none" lifts them, and a
# limit that bites is named: `run` says "out of memory (limit 64M)" or "task limit (16) reached", and
# ls --json counts it.
# Usage: limits_test.sh PATH/TO/bulkhead
set -u
BULKHEAD=$(realpath "${1:?usage: limits_test.sh PATH/TO/bulkhead}")
ROOT=$(mktemp -d /tmp/bulkhead-limits-test-XXXXXX)
LOG=$ROOT/daemon.log
DAEMON=
export BULKHEAD_SOCKET=$ROOT/run/admin.sock
cleanup() {
    stop_daemon
    rm -rf "$ROOT"
}
trap cleanup EXIT
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
B=$BULKHEAD

mkdir -p "$ROOT/etc"
cat >"$ROOT/etc/system.toml" <<'EOF'
[templates.host]
kind = "host"

[compartments.plain]
label = "blue"

[compartments.lifted]
label = "green"
memory = "none"
pids = "none"

[compartments.small]
label = "red"
memory = "64M"
pids = 16
EOF
start_daemon --config "$ROOT/etc/system.toml"
half=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024 / 2 ))

check plain-starts 0 "" -- "$B" start plain
[[ $(json_field plain memory_limit) == "$half" ]] && pass "default-memory-is-half-the-ram ($half)" || fail "default-memory-is-half-the-ram: $(json_field plain memory_limit), wanted $half"
[[ $(json_field plain pids_limit) == 4096 ]] && pass "default-pids-4096" || fail "default-pids-4096: $(json_field plain pids_limit)"
check default-rlimit-nproc-inside 0 "4096" -- "$B" run plain -- bash -c 'ulimit -u'
[[ $(json_field lifted memory_limit) == 0 && $(json_field lifted pids_limit) == 0 ]] && pass "none-lifts-both" \
    || fail "none-lifts-both: $(json_field lifted memory_limit) $(json_field lifted pids_limit)"
check plan-says-the-default 0 "" -- "$B" plan "$ROOT/etc/system.toml"

# ---- memory: the allocation is killed, and run says by what ----
out=$("$B" run small -- python3 -c 'b = bytearray(256 << 20); print("allocated")' 2>&1)
code=$?
[[ $code == 137 && $out == *"small: out of memory (limit 64M)"* && $out != *allocated* ]] \
    && pass "oom-named-by-run" || fail "oom-named-by-run: exit $code; $out"
kills=$(json_field small oom_kills)
[[ $kills =~ ^[0-9]+$ && $kills -ge 1 ]] && pass "ls-counts-oom-kills ($kills)" || fail "ls-counts-oom-kills: $kills"
check compartment-survives-its-oom 0 "still here" -- "$B" run small -- echo still here

# ---- tasks: forks past the limit are refused, and run says so ----
out=$("$B" run small -- sh -c 'for i in $(seq 40); do sleep 5 & done 2>/dev/null; wait' 2>&1)
[[ $out == *"small: task limit (16) reached"* ]] && pass "task-limit-named-by-run" || fail "task-limit-named-by-run: $out"
refused=$(json_field small pids_refused)
[[ $refused =~ ^[0-9]+$ && $refused -ge 1 ]] && pass "ls-counts-refused-forks ($refused)" || fail "ls-counts-refused-forks: $refused"

# ---- a run where no limit bites says nothing of limits ----
out=$("$B" run small -- echo fine 2>&1)
[[ $out == fine ]] && pass "quiet-when-no-limit-bites" || fail "quiet-when-no-limit-bites: $out"

echo "limits_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
