#!/usr/bin/env bash
# End-to-end checks of the bulkhead binary: exit codes, error messages, the demo.
# Usage: cli_test.sh PATH/TO/bulkhead
set -u
BULKHEAD=${1:?usage: cli_test.sh PATH/TO/bulkhead}
passed=0
failed=0
RUNTIME=$(mktemp -d /tmp/bulkhead-cli-test-XXXXXX)
trap 'rm -rf "$RUNTIME"' EXIT

check() { # NAME EXPECTED_CODE EXPECTED_STDERR_SUBSTRING -- COMMAND...
    local name=$1 want=$2 needle=$3
    shift 4
    local out err code
    out=$("$@" 2>"$RUNTIME/stderr")
    code=$?
    err=$(cat "$RUNTIME/stderr")
    if [[ $code -ne $want ]]; then
        echo "FAIL $name: exit $code, wanted $want; stderr: $err"
        failed=$((failed + 1))
        return
    fi
    if [[ -n $needle && $err != *"$needle"* && $out != *"$needle"* ]]; then
        echo "FAIL $name: output does not mention '$needle'; stdout: $out; stderr: $err"
        failed=$((failed + 1))
        return
    fi
    echo "ok   $name"
    passed=$((passed + 1))
}

S=("$BULKHEAD" sandbox --runtime-dir "$RUNTIME")

check version 0 "bulkhead 0." -- "$BULKHEAD" version
check no-command 2 "usage:" -- "$BULKHEAD"
check unknown-command 2 "unknown command" -- "$BULKHEAD" frobnicate
check exit-code-passes 42 "" -- "${S[@]}" -- /bin/sh -c 'exit 42'
check success 0 "" -- "${S[@]}" -- /bin/true
check not-found 127 "no-such-binary" -- "${S[@]}" -- no-such-binary
check not-executable 126 "Permission denied" -- "${S[@]}" -- /etc/hostname
check killed-by-signal 137 "" -- "${S[@]}" -- /bin/sh -c 'kill -9 $$'
check bad-memory 2 "--memory: cannot parse '12Q'" -- "${S[@]}" --memory 12Q -- /bin/true
check bad-cpus 2 "--cpus: cannot parse" -- "${S[@]}" --cpus lots -- /bin/true
check bad-pids 2 "--pids: cannot parse" -- "${S[@]}" --pids -3 -- /bin/true
check tiny-memory 2 "limits.memory:" -- "${S[@]}" --memory 1K -- /bin/true
check zero-memory 2 "--memory: '0.5' is no memory at all" -- "${S[@]}" --memory 0.5 -- /bin/true
check missing-template 2 "template.root: '/no/such/rootfs' does not exist" -- "${S[@]}" --template /no/such/rootfs -- /bin/true
check missing-bind 2 "binds[0].source: '/no/such/dir' does not exist" -- "${S[@]}" --bind /no/such/dir:/data -- /bin/true
check bad-bind-mode 2 "--bind: 'rx' is not ro or rw" -- "${S[@]}" --bind /tmp:/data:rx -- /bin/true
check bad-name 2 "name: 'Bad_Name'" -- "${S[@]}" --name Bad_Name -- /bin/true
check no-argv 2 "no command given" -- "${S[@]}" --
check unknown-option 2 "unknown option '--frob'" -- "${S[@]}" --frob x -- /bin/true
check user-root 0 "" -- "${S[@]}" --user root -- /bin/sh -c 'test "$(id -u)" = 0'
check user-default 0 "" -- "${S[@]}" -- /bin/sh -c 'test "$(id -u)" = 1000'
check env-added 0 "" -- "${S[@]}" --env GREETING=hi -- /bin/sh -c 'test "$GREETING" = hi'
check env-clean 0 "" -- env LEAKY=1 "${S[@]}" -- /bin/sh -c 'test -z "${LEAKY:-}"'
check cwd 0 "" -- "${S[@]}" --cwd /tmp -- /bin/sh -c 'test "$(pwd)" = /tmp'
check stdin-relayed 0 "" -- sh -c "echo piped | ${S[*]} -- /bin/sh -c 'read l; test \"\$l\" = piped'"
check demo 0 "demo passed" -- "$BULKHEAD" demo

leftover=$(ls -A "$RUNTIME" | grep -v '^stderr$' || true)
if [[ -n $leftover ]]; then
    echo "FAIL leftovers in the runtime dir: $leftover"
    failed=$((failed + 1))
else
    echo "ok   nothing-left-behind"
    passed=$((passed + 1))
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
