#!/usr/bin/env bash
# The administrator's terminal against a hostile compartment: `bulkhead run` and `run --tty` on a
# pty (terminal_driver.py plays the terminal) against a real broker under a temporary --root.
# Attacks: escape sequences without --tty (retitle, clear), a process left behind that holds the
# pty and forges a prompt to catch the next line typed, a pty set to raw -isig with no way out but
# ~., and the queries, answerback and clipboard writes on the tty path; checks that --raw, pipes,
# Ctrl-C and full-screen programs (tput, less, vim) still work as before.
# Usage: terminal_test.sh PATH/TO/bulkhead
set -u
BULKHEAD=$(realpath "${1:?usage: terminal_test.sh PATH/TO/bulkhead}")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(mktemp -d /tmp/bulkhead-terminal-test-XXXXXX)
LOG=$ROOT/daemon.log
DAEMON=
export BULKHEAD_SOCKET=$ROOT/run/admin.sock

cleanup() {
    stop_daemon
    rm -rf "$ROOT"
}
trap cleanup EXIT

# shellcheck source=tests/integration/lib.bash
source "$HERE/lib.bash"

mkdir -p "$ROOT/etc/policy.d"
cat >"$ROOT/etc/system.toml" <<'EOF'
[system]
default_disposable = "untrusted"

[templates.host]
kind = "host"

[compartments.work]
label = "blue"

[compartments.untrusted]
label = "red"
disposable_template = true
EOF
B=$BULKHEAD
start_daemon --config "$ROOT/etc/system.toml"

drive() { # SCENARIO: one attack or check of terminal_driver.py
    local out
    out=$(timeout 120 python3 "$HERE/terminal_driver.py" "$B" "$1" 2>&1)
    if [[ $? -eq 0 ]]; then pass "$1"; else fail "$1"; fi
    sed 's/^/     /' <<<"$out"
}

# ---- without --tty: text, defused on a terminal, unchanged into a pipe ----
drive title-without-tty
drive title-raw
drive message-defused
esc='\033]0;PWNED\007\033[2J'
expected=$(printf "$esc" | od -An -tx1)
out=$("$B" run work -- printf "$esc" | od -An -tx1)
[[ $out == "$expected" ]] && pass "pipe-gets-the-bytes-unchanged" || fail "pipe-gets-the-bytes-unchanged: $out"
out=$("$B" run work -- sh -c "printf '$esc' >&2" 2>&1 >/dev/null | od -An -tx1)
[[ $out == "$expected" ]] && pass "pipe-gets-stderr-unchanged" || fail "pipe-gets-stderr-unchanged: $out"

# ---- --tty: the session ends with the command; ~. ends it whatever the pty's settings ----
drive prompt-capture
drive escape-dot
drive escape-tilde
drive window-and-ctrl-c
# A run's stdin stops at the command's end without a tty too: a process left behind that reads
# the pipe gets nothing typed after the status.
out=$( (echo first; sleep 3; echo second-line) | "$B" run work -- sh -c 'exec 3<&0; setsid sh -c "cat > ~/left-behind" <&3 & sleep 1; exit 5'; echo "exit $?")
sleep 3
caught=$("$B" run work -- sh -c 'cat ~/left-behind; rm -f ~/left-behind')
[[ $out == "exit 5" && $caught != *second-line* ]] && pass "stdin-stops-at-the-status" || fail "stdin-stops-at-the-status: $out; caught: $caught"
# Output the command wrote before it ended is all delivered, however slowly it is read.
out=$("$B" run work -- sh -c 'head -c 3000000 /dev/zero | tr "\0" x; echo' | (sleep 1; wc -c))
[[ $out == 3000001 ]] && pass "output-complete-to-a-slow-reader" || fail "output-complete-to-a-slow-reader: $out bytes"

# ---- --tty: queries, answerback and the clipboard stay out; sessions still work ----
drive queries-tty
drive queries-tty-raw
drive full-screen
out=$("$B" run --tty work -- printf '\033[6n\033]52;c;eA==\007' | od -An -c)
[[ $out == *033*'['*6*n* && $out == *']'*5*2* ]] && pass "tty-into-a-pipe-unchanged" || fail "tty-into-a-pipe-unchanged: $out"

# ---- run --help documents the escape ----
out=$("$B" run --help)
[[ $out == *"~."* && $out == *"--raw"* ]] && pass "run-help-names-the-escape" || fail "run-help-names-the-escape: $out"

echo "terminal_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
