#!/usr/bin/env bash
# make demo: the main job of bulkhead, for real. A broker on the embedded default system under a
# temporary root; ls; a command in `work` and one in a disposable of `untrusted`; proof that the
# disposable cannot see work's files or processes; then everything stopped and checked gone.
# Usage: scripts/demo.sh PATH/TO/bulkhead   (as root)
set -u
B=$(realpath "${1:?usage: demo.sh PATH/TO/bulkhead}")
ROOT=$(mktemp -d /tmp/bulkhead-demo-XXXXXX)
export BULKHEAD_SOCKET=$ROOT/run/admin.sock
DAEMON=
problems=0
finish() {
    [[ -n $DAEMON ]] && { kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null; }
    rm -rf "$ROOT"
}
trap finish EXIT
# Bold headings on a terminal only, and never with NO_COLOR set (https://no-color.org).
if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
    step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    step() { printf '\n== %s\n' "$*"; }
fi
proof() { # TEXT COMMAND...: the command must fail (the attempt is refused)
    local text=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "  FAILED  $text"
        problems=$((problems + 1))
    else
        echo "  refused $text"
    fi
}

step "bulkhead daemon --root $ROOT   (embedded default system)"
"$B" daemon --root "$ROOT" >"$ROOT/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do "$B" ls >/dev/null 2>&1 && break; sleep 0.1; done
"$B" ls >/dev/null || { cat "$ROOT/daemon.log"; exit 1; }
sed 's/^/  /' "$ROOT/daemon.log"

step "bulkhead ls"
"$B" ls

step "bulkhead run work -- ...   (persistent: the home survives)"
"$B" run work -- sh -c 'echo "quarterly plans" > ~/plans.txt; echo "in $(hostname) as $(id -un) (uid $(id -u)); wrote ~/plans.txt"; ls -l ~/plans.txt'
work_pid=$("$B" ls --json | python3 -c 'import json,sys; print(next(c["pid"] for c in json.load(sys.stdin)["compartments"] if c["name"] == "work"))')
echo "  on the host (its home image, mounted while it runs): $ROOT/run/homes/work/plans.txt = $(cat "$ROOT/run/homes/work/plans.txt")"

step "bulkhead run --disposable -- ...   (a fresh disposable of untrusted, destroyed on exit)"
disp=$("$B" run --disposable -- hostname)
echo "  ran in $disp; now: $("$B" ls --json | python3 -c "import json,sys; print(next((c['state'] for c in json.load(sys.stdin)['compartments'] if c['name'] == '$disp'), 'gone'))")"
"$B" run --disposable -- sh -c 'echo "in $(hostname) as $(id -un): home holds [$(ls -A ~)], processes: $(ls /proc | grep -c "^[0-9]")"'

step "what a disposable of untrusted cannot do to work (tried as root inside)"
D=("$B" run --user root --disposable --)
proof "read work's home by its path inside (/home/user/plans.txt)" "${D[@]}" cat /home/user/plans.txt
proof "read work's home by its host path" "${D[@]}" cat "$ROOT/run/homes/work/plans.txt"
proof "see work's agent in /proc (host pid $work_pid)" "${D[@]}" test -e "/proc/$work_pid"
proof "signal work's agent" "${D[@]}" kill -0 "$work_pid"
proof "reach the admin socket" "${D[@]}" test -e "$ROOT/run/admin.sock"
proof "mount anything" "${D[@]}" mount -t tmpfs none /mnt
proof "make a new user namespace" "${D[@]}" unshare -U true
proof "open a network socket to the outside (no network)" "${D[@]}" sh -c 'exec 3<>/dev/tcp/127.0.0.1/22'

step "bulkhead ls   (the disposables are gone, work still runs)"
"$B" ls

step "stop everything"
"$B" stop work
kill "$DAEMON"; wait "$DAEMON"; DAEMON=
left=$(ls -A "$ROOT/run/compartments" "$ROOT/run/ipc" 2>/dev/null | grep -v ':$' | grep -v '^$')
if [[ -z $left && ! -e /proc/$work_pid ]]; then
    echo "  stopped: no compartment, mount point or process left"
else
    echo "  FAILED  left behind: $left"
    problems=$((problems + 1))
fi
echo
if ((problems == 0)); then
    echo "demo: every attempt to cross from the disposable to work was refused"
else
    echo "demo: $problems problem(s)"
    exit 1
fi
