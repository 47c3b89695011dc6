# Shared by the broker's end-to-end tests (sourced, not run). The test sets BULKHEAD (the binary)
# and ROOT (its temporary --root) first; `check` keeps the last command's stderr in CHECK_DIR
# (default: ROOT).
passed=0
failed=0

pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

check() { # NAME EXPECTED_CODE EXPECTED_OUTPUT_SUBSTRING -- COMMAND...
    local name=$1 want=$2 needle=$3
    shift 4
    local out err code
    out=$("$@" 2>"${CHECK_DIR:-$ROOT}/stderr")
    code=$?
    err=$(cat "${CHECK_DIR:-$ROOT}/stderr")
    if [[ $code -ne $want ]]; then
        fail "$name: exit $code, wanted $want; stdout: $out; stderr: $err"
        return
    fi
    if [[ -n $needle && $err != *"$needle"* && $out != *"$needle"* ]]; then
        fail "$name: output does not mention '$needle'; stdout: $out; stderr: $err"
        return
    fi
    pass "$name"
}

json_field() { # NAME FIELD: a field of one compartment in ls --json
    "$BULKHEAD" ls --json | python3 -c "import json,sys; print(next((c.get('$2') for c in json.load(sys.stdin)['compartments'] if c['name'] == '$1'), 'absent'))"
}

stop_compartments() { # every compartment that is not stopped (a test's cleanup)
    local name
    for name in $("$BULKHEAD" ls --json 2>/dev/null | python3 -c 'import json,sys; [print(c["name"]) for c in json.load(sys.stdin)["compartments"] if c["state"] != "stopped"]' 2>/dev/null); do
        "$BULKHEAD" stop "$name" >/dev/null 2>&1
    done
}

# The test's broker: BULKHEAD, ROOT and LOG set, DAEMON its pid once started.
start_daemon() { # [DAEMON OPTIONS...]: `bulkhead daemon --root $ROOT`, in the background, once it answers
    "$BULKHEAD" daemon --root "$ROOT" "$@" >>"$LOG" 2>&1 &
    DAEMON=$!
    for _ in $(seq 100); do
        "$BULKHEAD" ls >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "the daemon did not come up:"; cat "$LOG"
    exit 1
}

stop_daemon() { # every running compartment, then the daemon (for the test's cleanup)
    [[ -n ${DAEMON:-} ]] || return 0
    # An empty system first: no pool refills a disposable behind the stops (it would outlive the
    # daemon, as compartments do).
    printf '[templates.host]\nkind = "host"\n' >"$ROOT/.cleanup.toml"
    "$BULKHEAD" apply "$ROOT/.cleanup.toml" >/dev/null 2>&1
    stop_compartments
    kill "$DAEMON" 2>/dev/null
    wait "$DAEMON" 2>/dev/null
}

pending_id() { # the id of the newest pending ask (waits up to 10 s for one)
    local id
    for _ in $(seq 100); do
        id=$("$BULKHEAD" pending --json | python3 -c 'import json,sys; l=json.load(sys.stdin); print(l[-1]["id"] if l else "")')
        [[ -n $id ]] && { echo "$id"; return; }
        sleep 0.1
    done
}

# broker_test_setup NAME BULKHEAD_PATH: what every broker test starts with. Sets BULKHEAD and B (the
# binary), ROOT (a fresh temporary --root), LOG, DAEMON and BULKHEAD_SOCKET, and an EXIT trap that
# runs the test's own test_cleanup_extra (when it defines one), stops the daemon and everything it
# runs, and removes ROOT.
broker_test_setup() {
    BULKHEAD=$(realpath "${2:?usage: $0 PATH/TO/bulkhead}") || exit 2
    B=$BULKHEAD
    ROOT=$(mktemp -d "/tmp/bulkhead-$1-test-XXXXXX")
    LOG=$ROOT/daemon.log
    DAEMON=
    export BULKHEAD_SOCKET=$ROOT/run/admin.sock
    trap broker_test_cleanup EXIT
}

broker_test_cleanup() {
    if declare -F test_cleanup_extra >/dev/null; then test_cleanup_extra; fi
    stop_daemon
    rm -rf "$ROOT"
}
