#!/usr/bin/env bash
# End-to-end checks of the broker: the real bulkhead binary against a real `bulkhead daemon` under a
# temporary --root. Exit codes, streams, the clean environment, persistent homes, disposables,
# ls, the root-only admin socket, kill -9 of the broker during 50 runs, and nothing left behind.
# Usage: broker_test.sh PATH/TO/bulkhead PATH/TO/bulkhead_escape_probe
set -u
BULKHEAD=$(realpath "${1:?usage: broker_test.sh PATH/TO/bulkhead PATH/TO/bulkhead_escape_probe}")
PROBE=$(realpath "${2:?usage: broker_test.sh PATH/TO/bulkhead PATH/TO/bulkhead_escape_probe}")
ROOT=$(mktemp -d /tmp/bulkhead-broker-test-XXXXXX)
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
start_daemon

# ---- exit codes (DESIGN.md) ----
check exit-own-code 3 "" -- "$B" run work -- sh -c 'exit 3'
check exit-success 0 "" -- "$B" run work -- true
check exit-false 1 "" -- "$B" run work -- false
check exit-signal 137 "" -- "$B" run work -- sh -c 'kill -9 $$'
check exit-not-found 127 "no-such-binary" -- "$B" run work -- no-such-binary
check exit-not-executable 126 "Permission denied" -- "$B" run work -- /etc/hostname
check exit-unknown-compartment 2 "no compartment named 'nosuch'" -- "$B" run nosuch -- true
check exit-no-command 2 "no command given" -- "$B" run work
check exit-unknown-user 2 "unknown user 'alice'" -- "$B" run --user alice work -- true
check exit-not-a-template 2 "'work' is not a disposable template" -- "$B" run --disposable work -- true
check exit-unknown-option 2 "unknown option" -- "$B" run --frobnicate work -- true
check exit-no-broker 125 "cannot reach the broker" -- "$B" --socket "$ROOT/nowhere.sock" ls
check stop-not-running-is-a-no-op 0 "" -- "$B" stop vault
check exit-start-unknown 2 "no compartment named" -- "$B" start nosuch
check exit-ls-usage 2 "usage" -- "$B" ls --frobnicate

# ---- users and environment ----
check run-as-user 0 "uid=1000(user)" -- "$B" run work -- id
check run-as-root 0 "uid=0(root)" -- "$B" run --user root work -- id
env_inside=$(FOO_SECRET=leak LD_PRELOAD=/tmp/x "$B" run work -- env | sort | cut -d= -f1 | tr '\n' ' ')
if [[ $env_inside == "BULKHEAD_COMPARTMENT HOME LANG LOGNAME PATH USER " ]]; then
    pass "clean-environment"
else
    fail "clean-environment: got '$env_inside'"
fi

# ---- streams ----
head -c 67108864 /dev/urandom >"$ROOT/big"
want=$(sha256sum <"$ROOT/big" | cut -d' ' -f1)
got=$("$B" run work -- cat <"$ROOT/big" | sha256sum | cut -d' ' -f1)
[[ $got == "$want" ]] && pass "stdin-to-stdout-64MiB-intact" || fail "stdin-to-stdout-64MiB-intact: $got != $want"
got=$("$B" run work -- sh -c 'cat >&2' <"$ROOT/big" 2>&1 >/dev/null | sha256sum | cut -d' ' -f1)
[[ $got == "$want" ]] && pass "stderr-64MiB-intact" || fail "stderr-64MiB-intact"
out=$("$B" run work -- sh -c 'echo to-out; echo to-err >&2' 2>"$ROOT/err")
[[ $out == to-out && $(cat "$ROOT/err") == to-err ]] && pass "stdout-stderr-separate" || fail "stdout-stderr-separate"
got=$(head -c 100 /dev/zero | "$B" run work -- sh -c 'head -c 10 >/dev/null; exit 4'; echo "code=$?")
[[ $got == code=4 ]] && pass "command-not-reading-stdin" || fail "command-not-reading-stdin: $got"

# ---- persistent home ----
# The home is an image in STATE (disk, default 10G), mounted under RUN while work runs.
WORK_HOME=$ROOT/run/homes/work
"$B" run work -- sh -c 'echo kept > ~/note' >/dev/null
[[ -f $ROOT/state/compartments/work/home.img && $(cat "$WORK_HOME/note" 2>/dev/null) == kept ]] && pass "home-image-in-STATE" || fail "home-image-in-STATE"
"$B" restart work >/dev/null
check home-survives-restart 0 "kept" -- "$B" run work -- cat /home/user/note
work_pid=$(json_field work pid)
kill "$DAEMON"; wait "$DAEMON"
[[ -e /proc/$work_pid ]] && pass "compartment-outlives-broker-exit" || fail "compartment-outlives-broker-exit"
start_daemon
[[ $(json_field work pid) == "$work_pid" && $(json_field work state) == running ]] && pass "reattached-after-broker-exit" || fail "reattached-after-broker-exit"
check home-survives-broker-restart 0 "kept" -- "$B" run work -- cat /home/user/note

# ---- disposables ----
disp=$("$B" run --disposable -- sh -c 'echo scratch > ~/left-behind; hostname')
if [[ $disp == disp-* && ! -e $ROOT/run/compartments/$disp && ! -e $ROOT/run/ipc/$disp
    && -z $(for dir in $(sed -n 's/^bulkhead daemon: cgroups under //p' "$LOG" | sort -u); do ls -d "$dir/$disp" 2>/dev/null; done)
    && $(json_field "$disp" state) == absent ]]; then
    pass "disposable-gone-after-exit ($disp)"
else
    fail "disposable-gone-after-exit: '$disp' still has traces"
fi
check disposable-layer-not-reused 1 "" -- "$B" run --disposable untrusted -- test -e /home/user/left-behind
check disposable-cannot-see-work 1 "" -- "$B" run --disposable -- sh -c "test -e /home/user/note || test -e $WORK_HOME/note || test -e $ROOT/state/compartments/work/home.img || test -e /proc/$(json_field work pid)"
check disposable-exit-code 5 "" -- "$B" run --disposable -- sh -c 'exit 5'

# ---- commands started by the agent are as confined as the engine's own (tests/escape probe) ----
# (root inside holds no capability, so it cannot enter the user's 0700 home: it gets a copy in /root)
cp "$PROBE" "$WORK_HOME/probe"
"$B" run work -- cp /home/user/probe /tmp/probe
"$B" run --user root work -- sh -c 'cp /tmp/probe /root/probe && chmod 700 /root/probe' 
for user in user root; do
    for probe_check in status fds setuid abi core proc dev mounts syscalls; do
        path=/home/user/probe
        [[ $user == root ]] && path=/root/probe
        out=$("$B" run --user "$user" work -- "$path" "$probe_check" 2>&1)
        if [[ $out == *"PASS $probe_check"* && $out != *"FAIL "* ]]; then
            pass "agent-started-$user-$probe_check"
        else
            fail "agent-started-$user-$probe_check: $out"
        fi
    done
done
rm -f "$WORK_HOME/probe"

# ---- ls ----
out=$("$B" ls)
[[ $out == *work*blue*sandbox*running* && $out != *$'\e['* ]] && pass "ls-plain-when-not-a-terminal" || fail "ls-plain-when-not-a-terminal: $out"
coloured=$(python3 -c 'import pty,os,sys; pid,fd=pty.fork()
if pid==0: os.execv(sys.argv[1],[sys.argv[1],"ls"])
out=b""
while True:
    try: chunk=os.read(fd,4096)
    except OSError: break
    if not chunk: break
    out+=chunk
print(repr(out))' "$B")
[[ $coloured == *'\x1b[1;34mblue'* && $coloured == *'\x1b[1;31mred'* ]] && pass "ls-colour-on-a-terminal" || fail "ls-colour-on-a-terminal: $coloured"
nocolour=$(NO_COLOR=1 python3 -c 'import pty,os,sys; pid,fd=pty.fork()
if pid==0: os.execv(sys.argv[1],[sys.argv[1],"ls"])
out=b""
while True:
    try: chunk=os.read(fd,4096)
    except OSError: break
    if not chunk: break
    out+=chunk
print(repr(out))' "$B")
[[ $nocolour == *blue* && $nocolour != *'\x1b['* ]] && pass "ls-NO_COLOR" || fail "ls-NO_COLOR: $nocolour"
labels=$("$B" ls --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(c["name"]+"="+c["label"] for c in d["compartments"]))')
[[ $labels == "work=blue personal=green untrusted=red vault=black sys-net=orange" ]] && pass "ls-json-default-system" || fail "ls-json-default-system: $labels"

# ---- tty: window size, Ctrl-C reaches the command, not the client ----
tty_result=$(python3 - "$B" <<'EOF'
import os, pty, sys, time, select, fcntl, termios, struct
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "run", "--tty", "work", "--", "sh", "-c",
        "trap 'echo got-int; stty size; exit 3' INT; stty size; tty; echo ready; while :; do sleep 0.1; done"])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
out = b""
def until(token):
    global out
    end = time.time() + 20
    while token not in out and time.time() < end:
        if select.select([fd], [], [], 0.2)[0]:
            try: out += os.read(fd, 4096)
            except OSError: break
until(b"ready")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 44, 120, 0, 0))
os.kill(pid, 28)  # SIGWINCH, as the terminal would send it
time.sleep(0.3)
os.write(fd, b"\x03")
until(b"44 120")
_, status = os.waitpid(pid, 0)
print(repr(out), "exit", os.WEXITSTATUS(status) if os.WIFEXITED(status) else "signal")
EOF
)
[[ $tty_result == *"33 101"*"/dev/pts/0"*"ready"*"got-int"*"44 120"*"exit 3" ]] && pass "tty-size-ctrl-c-resize" || fail "tty-size-ctrl-c-resize: $tty_result"

# ---- the admin socket is root's, by the kernel's word ----
check admin-socket-mode 0 "srw-------" -- ls -l "$ROOT/run/admin.sock"
# Open the file modes on purpose: SO_PEERCRED must still refuse.
chmod 0755 "$ROOT" "$ROOT/run"; chmod 0666 "$ROOT/run/admin.sock"
check admin-refuses-non-root 125 "serves root only" -- setpriv --reuid 65534 --regid 65534 --clear-groups "$B" ls
chmod 0700 "$ROOT" "$ROOT/run"; chmod 0600 "$ROOT/run/admin.sock"
grep -q "refused an admin connection from uid 65534" "$LOG" && pass "admin-refusal-logged" || fail "admin-refusal-logged"

# ---- a compartment whose PID 1 dies is stopped and cleaned up ----
"$B" start personal >/dev/null
pid1=$(json_field personal pid)
kill -9 "$pid1"
for _ in $(seq 50); do [[ $(json_field personal state) == stopped ]] && break; sleep 0.1; done
[[ $(json_field personal state) == stopped && ! -e $ROOT/run/compartments/personal ]] && pass "dead-agent-stops-compartment" || fail "dead-agent-stops-compartment"
# ... also while no broker runs
"$B" start personal >/dev/null
pid1=$(json_field personal pid)
kill "$DAEMON"; wait "$DAEMON"
kill -9 "$pid1"
start_daemon
[[ $(json_field personal state) == stopped && ! -e $ROOT/run/compartments/personal && ! -e $ROOT/run/ipc/personal ]] \
    && grep -q "personal: its PID 1 is gone; marked stopped and cleaned up" "$LOG" && pass "dead-agent-cleaned-on-reattach" || fail "dead-agent-cleaned-on-reattach"

# ---- apply is atomic: a failure half way returns to the previous state ----
cat >"$ROOT/next.toml" <<'TOML'
[system]
default_disposable = "untrusted"
[templates.host]
kind = "host"
[compartments.work]
label = "blue"
autostart = true
[compartments.untrusted]
label = "red"
disposable_template = true
[compartments.zz-blocked]
label = "gray"
autostart = true
TOML
generation() { "$B" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])'; }
gen_before=$(generation)
work_pid=$(json_field work pid)
check plan-shows-changes 0 "+ zz-blocked" -- "$B" plan "$ROOT/next.toml"
[[ $(generation) == "$gen_before" && $(json_field work pid) == "$work_pid" ]] && pass "plan-changes-nothing" || fail "plan-changes-nothing"
mkdir "$ROOT/run/compartments/zz-blocked" # its start will fail half way through the apply
check apply-fails-half-way 125 "is still in force" -- "$B" apply "$ROOT/next.toml"
if [[ $(generation) == "$gen_before" && $(json_field zz-blocked state) == absent && $(json_field vault state) == stopped
    && $(json_field work state) == running ]]; then
    pass "apply-rolled-back-to-previous-state"
else
    fail "apply-rolled-back-to-previous-state: generation $(generation), work $(json_field work state)"
fi
rmdir "$ROOT/run/compartments/zz-blocked"
check apply-succeeds 0 "generation $((gen_before + 1)) applied" -- "$B" apply "$ROOT/next.toml"
[[ $(json_field zz-blocked state) == running && $(json_field vault state) == absent ]] && pass "apply-started-autostart" || fail "apply-started-autostart"
check rollback 0 "generation $gen_before applied" -- "$B" rollback
[[ $(generation) == "$gen_before" && $(json_field zz-blocked state) == absent && $(json_field vault state) == stopped
    && ! -e $ROOT/run/compartments/zz-blocked ]] && pass "rollback-restores-previous-generation" || fail "rollback-restores-previous-generation"
check rollback-nothing-before 2 "no generation before" -- "$B" rollback

# ---- kill -9 of the broker during 50 concurrent runs ----
mkdir -p "$ROOT/runs"
pids=()
for i in $(seq 50); do
    if ((i % 10 == 0)); then
        "$B" run --disposable -- sh -c "echo started-$i; sleep 2; echo done-$i" >"$ROOT/runs/$i.out" 2>"$ROOT/runs/$i.err" &
    else
        "$B" run work -- sh -c "echo started-$i; sleep 2; echo done-$i" >"$ROOT/runs/$i.out" 2>"$ROOT/runs/$i.err" &
    fi
    pids+=($!)
done
# The broker dies once every command runs (a request the broker never saw is not a lost compartment).
for _ in $(seq 300); do
    [[ $(cat "$ROOT"/runs/*.out 2>/dev/null | grep -c '^started-') -eq 50 ]] && break
    sleep 0.1
done
kill -9 "$DAEMON"; wait "$DAEMON" 2>/dev/null
start_daemon
lost=0
for i in $(seq 50); do
    wait "${pids[$((i - 1))]}"
    code=$?
    [[ $code -eq 0 && $(cat "$ROOT/runs/$i.out") == "started-$i"$'\n'"done-$i" ]] || { lost=$((lost + 1)); echo "  run $i: exit $code, $(cat "$ROOT/runs/$i.out" "$ROOT/runs/$i.err")"; }
done
((lost == 0)) && pass "kill-9-during-50-runs: every run completed" || fail "kill-9-during-50-runs: $lost of 50 runs lost"
[[ $(json_field work state) == running ]] && pass "kill-9-work-reattached" || fail "kill-9-work-reattached"
for _ in $(seq 50); do
    [[ -z $("$B" ls --json | python3 -c 'import json,sys; print(" ".join(c["name"] for c in json.load(sys.stdin)["compartments"] if c["disposable"]))') ]] && break
    sleep 0.1
done
check kill-9-disposables-torn-down 0 "" -- test -z "$(ls "$ROOT/run/compartments" | grep disp-)"

# ---- after stop: no mount, cgroup or process left ----
agent_pids=$("$B" ls --json | python3 -c 'import json,sys; print(" ".join(str(c["pid"]) for c in json.load(sys.stdin)["compartments"] if "pid" in c))')
instance_dirs=$(sed -n 's/^bulkhead daemon: cgroups under //p' "$LOG" | sort -u)
for name in $("$B" ls --json | python3 -c 'import json,sys; [print(c["name"]) for c in json.load(sys.stdin)["compartments"] if c["state"] != "stopped"]'); do
    "$B" stop "$name" >/dev/null
done
leftover=""
# (An adopted PID 1 is not the new broker's child: host init reaps it, so a zombie may linger briefly.)
for pid in $agent_pids; do
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [[ -n $state && $state != Z ]] && leftover+=" process $pid ($state)"
done
[[ -n $(ls -A "$ROOT/run/compartments") ]] && leftover+=" runtime dirs: $(ls "$ROOT/run/compartments")"
[[ -n $(ls -A "$ROOT/run/ipc") ]] && leftover+=" ipc dirs: $(ls "$ROOT/run/ipc")"
for dir in $instance_dirs; do
    [[ -n $(find "$dir" -mindepth 1 -type d 2>/dev/null) ]] && leftover+=" cgroups under $dir"
done
grep -q "$ROOT/run/compartments" /proc/self/mountinfo && leftover+=" mounts"
[[ -z $leftover ]] && pass "stop-leaves-nothing" || fail "stop-leaves-nothing:$leftover"

echo "broker_test: $passed passed, $failed failed"
((failed == 0))
