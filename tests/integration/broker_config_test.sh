#!/usr/bin/env bash
# End-to-end checks of configuration handling by a real `bulkhead daemon` under a temporary --root:
# every broken system.toml in broken-configs/ is refused by both `plan` and `apply` with exit 2 and
# exactly the diagnostics in its NAME.expected (FILE standing for the path as given), and nothing
# is applied; then plan, apply, rollback of a valid file, and a missing and an empty file.
# Usage: broker_config_test.sh PATH/TO/bulkhead
set -u
BULKHEAD=$(realpath "${1:?usage: broker_config_test.sh PATH/TO/bulkhead}")
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=$HERE/broken-configs
ROOT=$(mktemp -d /tmp/bulkhead-broker-config-test-XXXXXX)
LOG=$ROOT/daemon.log
WORK=$ROOT/work # files of the test itself: stderr captures, the valid configuration
CHECK_DIR=$WORK
DAEMON=
mkdir -p "$WORK"

cleanup() {
    if [[ -n $DAEMON ]]; then
        kill -TERM "$DAEMON" 2>/dev/null
        # Wait up to 10 s for a clean stop, then make sure it is gone.
        for _ in $(seq 100); do
            kill -0 "$DAEMON" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$DAEMON" 2>/dev/null; then
            echo "the daemon ignored SIGTERM for 10 s; killing it"
            kill -KILL "$DAEMON" 2>/dev/null
        fi
        wait "$DAEMON" 2>/dev/null
    fi
    rm -rf "$ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=tests/integration/lib.bash
source "$HERE/lib.bash"

B=("$BULKHEAD")
R=(--root "$ROOT")

generation() { # the generation `ls --json` reports (a top-level key, indented by two), or "?"
    local json got
    json=$("${B[@]}" ls "${R[@]}" --json 2>/dev/null)
    got=$(sed -n 's/^  "generation": \([0-9][0-9]*\),\{0,1\}$/\1/p' <<<"$json")
    echo "${got:-?}"
}

check_generation() { # NAME EXPECTED_GENERATION
    local got
    got=$(generation)
    if [[ $got == "$2" ]]; then
        pass "$1"
    else
        fail "$1: ls --json reports generation $got, wanted $2"
    fi
}

# ---- the broker ----
"${B[@]}" daemon "${R[@]}" >>"$LOG" 2>&1 &
DAEMON=$!
up=0
for _ in $(seq 100); do
    if "${B[@]}" ls "${R[@]}" >/dev/null 2>&1; then
        up=1
        break
    fi
    kill -0 "$DAEMON" 2>/dev/null || break
    sleep 0.1
done
if ((up == 0)); then
    echo "FAIL the daemon did not come up within 10 s:"
    cat "$LOG"
    exit 1
fi
check_generation daemon-starts-at-generation-1 1
BASELINE=$("${B[@]}" ls "${R[@]}" --json)

# ---- broken configurations: refused by plan and apply, exactly as expected, nothing applied ----
shopt -s nullglob
cases=("$CORPUS"/*.toml)
if ((${#cases[@]} < 22)); then
    fail "corpus: only ${#cases[@]} broken configurations in $CORPUS (at least 22 expected)"
fi
for file in "${cases[@]}"; do
    name=${file##*/}
    name=${name%.toml}
    expected_file=$CORPUS/$name.expected
    if [[ ! -f $expected_file ]]; then
        fail "$name: $expected_file is missing"
        continue
    fi
    # The expectation, with the placeholder FILE at the start of each line replaced by the path
    # exactly as it is given on the command line.
    : >"$WORK/expected"
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line == FILE:* ]] && line=$file:${line#FILE:}
        printf '%s\n' "$line" >>"$WORK/expected"
    done <"$expected_file"
    for op in plan apply; do
        out=$("${B[@]}" "$op" "${R[@]}" "$file" 2>"$WORK/stderr")
        code=$?
        if [[ $code -ne 2 ]]; then
            fail "$op $name: exit $code, wanted 2; stdout: $out; stderr: $(cat "$WORK/stderr")"
        elif ! cmp -s "$WORK/expected" "$WORK/stderr"; then
            fail "$op $name: stderr differs from $name.expected (- expected, + actual):
$(diff -u "$WORK/expected" "$WORK/stderr" | tail -n +3)"
        elif [[ -n $out ]]; then
            fail "$op $name: printed on stdout: $out"
        else
            now=$("${B[@]}" ls "${R[@]}" --json 2>&1)
            if [[ $now != "$BASELINE" ]]; then
                fail "$op $name: the running system changed; ls --json now: $(generation) / $now"
            else
                pass "$op $name"
            fi
        fi
    done
done
check_generation broken-configs-left-generation-1 1

# ---- a valid file: plan changes nothing, apply makes generation 2, rollback returns to 1 ----
VALID=$WORK/valid.toml
cat >"$VALID" <<'EOF'
# The embedded default system plus one compartment.
[system]
default_disposable = "untrusted"

[templates.host]
kind = "host"

[compartments.work]
label = "blue"
network = "sys-net"
tags = ["work"]

[compartments.personal]
label = "green"
network = "sys-net"
tags = ["personal"]

[compartments.untrusted]
label = "red"
disposable_template = true
network = "sys-net"

[compartments.vault]
label = "black"
network = "none"

[compartments.sys-net]
label = "orange"
provides_network = true

[compartments.research]
label = "purple"
network = "none"
memory = "512M"
tags = ["work"]
EOF

out=$("${B[@]}" plan "${R[@]}" "$VALID" 2>"$WORK/stderr")
code=$?
if [[ $code -eq 0 ]] && grep -q '^+ research' <<<"$out"; then
    pass "plan-valid-shows-added-compartment"
else
    fail "plan-valid-shows-added-compartment: exit $code; stdout: $out; stderr: $(cat "$WORK/stderr")"
fi
check_generation plan-valid-changes-nothing 1
check apply-valid 0 "+ research" -- "${B[@]}" apply "${R[@]}" "$VALID"
check_generation apply-valid-makes-generation-2 2
check apply-missing-file 2 "$WORK/no-such.toml" -- "${B[@]}" apply "${R[@]}" "$WORK/no-such.toml"
: >"$WORK/empty.toml"
check apply-empty-file 2 "is empty" -- "${B[@]}" apply "${R[@]}" "$WORK/empty.toml"
check_generation missing-and-empty-changed-nothing 2
check rollback-to-generation-1 0 "- research" -- "${B[@]}" rollback "${R[@]}"
check_generation rollback-makes-generation-1 1
check rollback-with-no-earlier-generation 2 "no generation before 1" -- "${B[@]}" rollback "${R[@]}"
check_generation second-rollback-changed-nothing 1

if kill -0 "$DAEMON" 2>/dev/null; then
    pass "daemon-still-running"
else
    fail "daemon-still-running: the daemon exited; its log:"
    cat "$LOG"
fi
if ((failed > 0)); then
    echo "---- daemon log ----"
    cat "$LOG"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
