#!/usr/bin/env bash
# End-to-end checks of calls between compartments: the real bulkhead binary against a real broker
# under a temporary --root, with a configuration and a policy.d of its own. Policy decisions
# (allow, deny, no rule, ask: approve, deny, no answer), the service's streams, environment, user
# and exit code, autostart, redirects, @disposable targets, file copies, the audit log and its
# verification after tampering, an invalid policy refused as a whole, hostile callers, and a
# flood of calls.
# Usage: calls_test.sh PATH/TO/bulkhead
set -u
BULKHEAD=$(realpath "${1:?usage: calls_test.sh PATH/TO/bulkhead}")
ROOT=$(mktemp -d /tmp/bulkhead-calls-test-XXXXXX)
LOG=$ROOT/daemon.log
DAEMON=
export BULKHEAD_SOCKET=$ROOT/run/admin.sock
# Services are found in the target at /usr/lib/bulkhead/services/ (the host template shares /usr).
SERVICES=/usr/lib/bulkhead/services
PREFIX=bulkhead-test-$$

cleanup() {
    stop_daemon
    rm -f "$SERVICES/$PREFIX".* "$SERVICES/bulkhead.OpenInDisposable"
    rmdir "$SERVICES" /usr/lib/bulkhead 2>/dev/null
    rm -rf "$ROOT"
}
trap cleanup EXIT

# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"

# ---- the system under test ----
mkdir -p "$ROOT/etc/policy.d" "$SERVICES"
cat >"$ROOT/etc/system.toml" <<'EOF'
[system]
default_disposable = "untrusted"

[templates.host]
kind = "host"

[compartments.work]
label = "blue"
tags = ["work"]
pids = 4096

[compartments.research]
label = "purple"
tags = ["work"]

[compartments.vault]
label = "black"
pids = 4096

[compartments.personal]
label = "green"

[compartments.untrusted]
label = "red"
disposable_template = true
EOF
P=$PREFIX
cat >"$ROOT/etc/policy.d/10-calls.policy" <<EOF
# calls_test.sh
$P.Echo        *    work      vault        allow
$P.Echo        *    personal  vault        ask
$P.Echo        +x   work      research     allow  user=root
$P.Redirect    *    work      @default     allow  target=vault
$P.Echo        *    work      @disposable  allow
$P.Status      *    work      vault        allow
$P.Missing     *    work      vault        allow
$P.Empty       *    work      vault        allow
$P.Empty       *    research  vault        allow
$P.NoStart     *    work      personal     allow  autostart=no
$P.Denied      *    work      vault        deny
EOF
cat >"$ROOT/etc/policy.d/20-files.policy" <<'EOF'
bulkhead.Filecopy  *  @tag:work  @tag:work  allow
bulkhead.Filecopy  *  work       vault      ask
bulkhead.Clipboard *  work       research   allow
bulkhead.OpenInDisposable * work @disposable allow
EOF
cat >"$SERVICES/$P.Echo" <<'EOF'
#!/bin/sh
echo "source=$BULKHEAD_SOURCE service=$BULKHEAD_SERVICE arg=$BULKHEAD_ARG in=$BULKHEAD_COMPARTMENT uid=$(id -u)"
cat
echo "to stderr" >&2
EOF
printf '#!/bin/sh\nexit 7\n' >"$SERVICES/$P.Status"
printf '#!/bin/sh\nexit 0\n' >"$SERVICES/$P.Empty"
cp "$SERVICES/$P.Echo" "$SERVICES/$P.Redirect"
cp "$SERVICES/$P.Echo" "$SERVICES/$P.NoStart"
chmod 755 "$SERVICES/$P".*

B=$BULKHEAD
start_daemon --config "$ROOT/etc/system.toml" --ask-timeout 10
grep -q "policy: 15 rules from $ROOT/etc/policy.d" "$LOG" && pass "daemon-loads-policy-beside-config" || fail "daemon-loads-policy-beside-config: $(grep policy "$LOG")"

# ---- allow: streams, environment, user, exit code ----
[[ $(json_field vault state) == stopped ]] && pass "vault-stopped-before-call" || fail "vault-stopped-before-call"
out=$(echo hello | "$B" run work -- bulkhead-call vault "$P.Echo+abc" 2>"$ROOT/stderr")
code=$?
if [[ $code -eq 0 && $out == *"source=work service=$P.Echo arg=abc in=vault uid=1000"* && $out == *hello* ]]; then
    pass "allow-runs-service-in-target-with-caller-stdin"
else
    fail "allow-runs-service-in-target-with-caller-stdin: exit $code; out: $out; err: $(cat "$ROOT/stderr")"
fi
grep -q "to stderr" "$ROOT/stderr" && pass "service-stderr-reaches-caller" || fail "service-stderr-reaches-caller: $(cat "$ROOT/stderr")"
[[ $(json_field vault state) == running ]] && pass "call-autostarted-target" || fail "call-autostarted-target"
check exit-code-of-service 7 "" -- "$B" run work -- bulkhead-call vault "$P.Status"
check missing-service-127 127 "no service $P.Missing in vault" -- "$B" run work -- bulkhead-call vault "$P.Missing"
check user-root-param 0 "uid=0" -- "$B" run work -- sh -c "echo | bulkhead-call research $P.Echo+x"
check arg-must-match 126 "denied by policy" -- "$B" run work -- sh -c "echo | bulkhead-call research $P.Echo+y"
check redirect-target-param 0 "in=vault" -- "$B" run work -- sh -c "echo | bulkhead-call @default $P.Redirect"
check autostart-no 125 "autostart=no" -- "$B" run work -- sh -c "echo | bulkhead-call personal $P.NoStart"
[[ $(json_field personal state) == stopped ]] && pass "autostart-no-left-target-stopped" || fail "autostart-no-left-target-stopped"

# ---- deny ----
# Inside, every denial reads the same and names no policy file (the host's paths stay on the host);
# the rule that decided is in the audit log and in `policy check --explain`.
check deny-rule 126 "denied by policy" -- "$B" run work -- bulkhead-call vault "$P.Denied"
deny_rule_err=$(cat "$ROOT/stderr")
[[ $deny_rule_err != *policy.d* && $deny_rule_err != *"$ROOT"* && $deny_rule_err != *":12"* ]] && pass "deny-names-no-host-path-inside" || fail "deny-names-no-host-path-inside: $deny_rule_err"
last_rule() { "$B" audit --json | python3 -c "import json,sys; r=[json.loads(l) for l in sys.stdin if l.strip()]; r=[x for x in r if x.get('service')=='$1']; print(r[-1].get('verdict'), r[-1].get('rule',''), r[-1].get('detail',''))"; }
[[ $(last_rule "$P.Denied") == "deny $ROOT/etc/policy.d/10-calls.policy:12"* ]] && pass "deny-rule-in-audit" || fail "deny-rule-in-audit: $(last_rule "$P.Denied")"
check deny-rule-explained-on-host 1 "10-calls.policy:12" -- "$B" policy check work vault "$P.Denied"
check deny-no-rule 126 "denied by policy" -- "$B" run vault -- bulkhead-call work "$P.Echo"
check deny-unknown-target 126 "denied by policy" -- "$B" run work -- bulkhead-call nosuch "$P.Echo"
[[ $(cat "$ROOT/stderr") == "$deny_rule_err" ]] && pass "unknown-target-reads-like-a-deny" || fail "unknown-target-reads-like-a-deny: $(cat "$ROOT/stderr") vs $deny_rule_err"
check deny-as-root-inside 126 "denied by policy" -- "$B" run --user root vault -- bulkhead-call work "$P.Echo"
check call-usage 2 "usage: bulkhead-call" -- "$B" run work -- bulkhead-call vault

# ---- @disposable: made for the call, destroyed after ----
out=$(echo | "$B" run work -- bulkhead-call @disposable "$P.Echo" 2>&1)
if [[ $out == *"in=disp-"* ]]; then pass "disposable-target-runs-in-new-disposable"; else fail "disposable-target-runs-in-new-disposable: $out"; fi
disp=$(sed -n 's/.*in=\(disp-[0-9]*\).*/\1/p' <<<"$out")
sleep 0.3
[[ -n $disp && $(json_field "$disp" state) == absent && ! -e $ROOT/run/compartments/$disp ]] && pass "disposable-target-destroyed-after-call" || fail "disposable-target-destroyed-after-call: $disp $(json_field "$disp" state)"

# ---- bulkhead-open-disposable: a copy opened in a new disposable, the edit returned, then destroyed ----
in_work() { "$B" run work -- sh -c "cd && $1"; }
in_work 'printf "hello old world\n" > open.txt && chmod 640 open.txt' >/dev/null
check open-default-viewer-shows-file 0 "hello old world" -- "$B" run work -- sh -c 'cd && bulkhead-open-disposable open.txt'
out=$(in_work 'bulkhead-open-disposable open.txt "echo in=\$BULKHEAD_COMPARTMENT from=\$BULKHEAD_SOURCE; wc -c"' 2>&1)
disp=$(sed -n 's/.*in=\(disp-[0-9]*\).*/\1/p' <<<"$out")
[[ -n $disp && $out == *"from=work"* && $out == *"16 /home/user/open-"*"/open.txt"* ]] && pass "open-runs-command-on-copy-in-disposable" || fail "open-runs-command-on-copy-in-disposable: $out"
sleep 0.3
[[ $(json_field "$disp" state) == absent && ! -e $ROOT/run/compartments/$disp ]] && pass "open-disposable-destroyed-after" || fail "open-disposable-destroyed-after: $disp $(json_field "$disp" state)"
check open-exit-code-is-commands 4 "" -- "$B" run work -- sh -c 'cd && bulkhead-open-disposable open.txt "exit 4"'
check open-edit-replaces-original 0 "replaced by the version edited" -- "$B" run work -- sh -c 'cd && bulkhead-open-disposable open.txt sed -i s/old/new/'
[[ $(in_work 'cat open.txt; stat -c %a open.txt') == $'hello new world\n640' ]] && pass "open-edit-content-and-mode" || fail "open-edit-content-and-mode: $(in_work 'cat open.txt; stat -c %a open.txt')"
check open-view-only-keeps-original 0 "" -- "$B" run work -- sh -c 'cd && bulkhead-open-disposable --view-only open.txt sed -i s/new/bad/ && grep -q "hello new world" open.txt'
check open-failed-command-keeps-edit-beside 3 "kept as /home/user/open.txt.edited" -- "$B" run work -- sh -c 'cd && bulkhead-open-disposable open.txt "f() { echo changed > \"\$1\"; exit 3; }; f"'
[[ $(in_work 'cat open.txt; cat open.txt.edited') == $'hello new world\nchanged' ]] && pass "open-failed-command-original-intact" || fail "open-failed-command-original-intact: $(in_work 'cat open.txt open.txt.edited')"
check open-unchanged-file-not-rewritten 0 "" -- "$B" run work -- sh -c 'cd && ino=$(stat -c %i open.txt) && bulkhead-open-disposable open.txt touch && [ "$(stat -c %i open.txt)" = "$ino" ]'
# On a terminal, what the disposable writes cannot drive it: control sequences arrive defused.
in_work 'printf "title\033]0;owned\007 clear\033[2J\n" > esc.txt' >/dev/null
out=$(script -qec "$B run --tty work -- sh -c 'cd && bulkhead-open-disposable esc.txt'" /dev/null 2>&1)
[[ $out == *"title?]0;owned? clear?[2J"* && $out != *$'\033]0;owned'* && $out != *$'\033[2J'* ]] \
    && pass "open-defuses-control-sequences-on-a-terminal" || fail "open-defuses-control-sequences-on-a-terminal: $(printf '%q' "$out")"
# The same for bulkhead-call: a service's bytes reach a terminal defused (unless --raw), a pipe unchanged.
esc='title\033]0;owned\007 clear\033[2J\n'
out=$(script -qec "$B run --tty work -- sh -c 'printf \"$esc\" | bulkhead-call vault $P.Echo'" /dev/null 2>&1)
[[ $out == *"title?]0;owned? clear?[2J"* && $out != *$'\033]0;owned'* && $out != *$'\033[2J'* ]] \
    && pass "call-defuses-control-sequences-on-a-terminal" || fail "call-defuses-control-sequences-on-a-terminal: $(printf '%q' "$out")"
# (--raw on both sides: the host's run filters the session's title too.)
out=$(script -qec "$B run --tty --raw work -- sh -c 'printf \"$esc\" | bulkhead-call --raw vault $P.Echo'" /dev/null 2>&1)
[[ $out == *$'title\033]0;owned\a clear\033[2J'* ]] && pass "call-raw-passes-control-sequences" || fail "call-raw-passes-control-sequences: $(printf '%q' "$out")"
check call-passes-bytes-unchanged-to-a-pipe 0 "" -- "$B" run work -- sh -c "printf '$esc' > /tmp/esc && bulkhead-call vault $P.Echo < /tmp/esc | tail -n +2 | cmp - /tmp/esc"
check open-passes-bytes-unchanged-to-a-pipe 0 "" -- "$B" run work -- sh -c 'cd && bulkhead-open-disposable esc.txt | cmp - esc.txt'
check open-missing-file 2 "nothere: No such file" -- "$B" run work -- bulkhead-open-disposable /nothere
check open-directory 2 "not a regular file" -- "$B" run work -- bulkhead-open-disposable /home/user
check open-usage 2 "usage: bulkhead-open-disposable" -- "$B" run work -- bulkhead-open-disposable
check open-denied-by-policy 126 "denied by policy" -- "$B" run research -- sh -c 'echo x > /tmp/f && bulkhead-open-disposable /tmp/f'
check open-no-such-template 126 "denied by policy" -- "$B" run work -- sh -c 'cd && bulkhead-open-disposable --template vault open.txt'
# A hostile disposable (its service replaced): every malformed answer leaves the original as it
# was, no temporary or .edited file behind, and says why.
cat >"$SERVICES/bulkhead.OpenInDisposable" <<'EOF'
#!/usr/bin/python3
import struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
magic, version, flags, name_size, command_size, size = struct.unpack("<4sBBHHQ", inp.read(18))
name = inp.read(name_size).decode()
inp.read(command_size)
inp.read(size)
def frame(kind, payload=b"", length=None):
    out.write(struct.pack("<BQ", kind, len(payload) if length is None else length) + payload)
how = name.split(".")[0]
if how == "cut": frame(2, b"evil", length=1000)
elif how == "hugeoutput": frame(1, b"x", length=1 << 20)
elif how == "twice": frame(2, b"a"); frame(2, b"b"); frame(3)
elif how == "after": frame(2, b"evil"); frame(3); frame(1, b"more")
elif how == "viewonly": frame(2, b"evil"); frame(3)
elif how == "noend": frame(2, b"evil")
elif how == "unknown": frame(9)
elif how == "hugefile": frame(2, b"evil", length=1 << 62)
out.flush()
EOF
chmod 755 "$SERVICES/bulkhead.OpenInDisposable"
for how in cut hugeoutput twice after viewonly noend unknown hugefile; do
    flag=; [[ $how == viewonly ]] && flag=--view-only
    out=$("$B" run work -- sh -c "cd && mkdir h-$how && echo original > h-$how/$how.txt && bulkhead-open-disposable $flag h-$how/$how.txt 2>&1; echo \"exit \$?\"; cat h-$how/$how.txt; ls -A h-$how" 2>&1)
    [[ $out == *"the disposable's answer"* && $out == *"exit 125"* && $out == *$'original\n'"$how.txt" && $out != *"$how.txt.edited"* && $out != *.bulkhead-open* ]] \
        && pass "open-hostile-answer-$how" || fail "open-hostile-answer-$how: $out"
done
rm -f "$SERVICES/bulkhead.OpenInDisposable"
# An edited file comes back only within bounds (4 x the original or 64 MiB more, --max-size) and
# when the caller's filesystem has room; holes stay holes. A disposable that grows the file to
# 1 GiB (a hole in the disposable, real blocks wherever it were written whole) is refused before a
# byte is written, and the original is kept.
out=$(in_work 'mkdir b-huge && printf "hello\n" > b-huge/f.txt && bulkhead-open-disposable b-huge/f.txt "truncate -s 1G" 2>&1; echo "exit $?"; cat b-huge/f.txt; ls -A b-huge; du -sk b-huge | cut -f1' 2>&1)
[[ $out == *"an edited file of 1073741824 bytes, more than the 67108870 accepted for this file; b-huge/f.txt is unchanged"* \
    && $out == *$'exit 125\nhello\nf.txt\n'* && ${out##*$'\n'} -le 64 ]] && pass "open-edit-over-the-bound-refused" || fail "open-edit-over-the-bound-refused: $out"
out=$(in_work 'mkdir b-holes && printf "hello\n" > b-holes/f.txt && bulkhead-open-disposable b-holes/f.txt "truncate -s 60M"; echo "exit $?"; stat -c "%s %b" b-holes/f.txt; ls -A b-holes' 2>&1)
blocks=$(sed -n 's/^62914560 \([0-9]*\)$/\1/p' <<<"$out")
[[ $out == *"replaced by the version edited"* && $out == *"exit 0"* && -n $blocks && $blocks -le 128 && $out == *$'\nf.txt' ]] \
    && pass "open-edit-keeps-holes ($blocks blocks for 60 MiB)" || fail "open-edit-keeps-holes: $out"
check open-max-size-bounds-the-edit 125 "more than the 1024 accepted" -- "$B" run work -- sh -c \
    'cd && mkdir b-max && echo small > b-max/f.txt && bulkhead-open-disposable --max-size 1K b-max/f.txt "head -c 2000 /dev/urandom >"; r=$?; [ "$(ls -A b-max)" = f.txt ] && grep -qx small b-max/f.txt || exit 99; exit $r'
check open-max-size-usage 2 "--max-size: " -- "$B" run work -- bulkhead-open-disposable --max-size lots /etc/hostname
# The caller's filesystem (its /tmp, filled to leave 40 MiB) has no room for 48 MiB: refused before writing.
out=$("$B" run work -- sh -c 'free=$(df --output=avail -B1 /tmp | tail -1); fill=$((free - 40 * 1048576)); [ "$fill" -gt 0 ] && head -c "$fill" /dev/zero > /tmp/filler
    printf "x\n" > /tmp/f.txt; bulkhead-open-disposable /tmp/f.txt "head -c 48M /dev/urandom >" 2>&1; echo "exit $?"; cat /tmp/f.txt; ls -A /tmp; rm -f /tmp/filler /tmp/f.txt' 2>&1)
[[ $out == *"an edited file of 50331648 bytes does not fit in /tmp"* && $out == *$'exit 125\nx\n'* && $out != *.bulkhead-open* && $out != *f.txt.edited* ]] \
    && pass "open-edit-needs-room" || fail "open-edit-needs-room: $out"
# A caller interrupted (SIGINT, SIGTERM, SIGHUP) while an edit arrives leaves no staging file.
cat >"$SERVICES/bulkhead.OpenInDisposable" <<'EOF2'
#!/usr/bin/python3
import struct, sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
magic, version, flags, name_size, command_size, size = struct.unpack("<4sBBHHQ", inp.read(18))
inp.read(name_size + command_size + size)
out.write(struct.pack("<BQ", 2, 32 << 20))
try:
    while True:
        out.write(b"x" * 65536)
        out.flush()
        time.sleep(0.2)
except BrokenPipeError:
    pass
EOF2
chmod 755 "$SERVICES/bulkhead.OpenInDisposable"
out=$("$B" run work -- python3 -c '
import glob, os, signal, subprocess, time
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    d = os.path.expanduser("~/b-signal-%d" % sig)
    os.makedirs(d)
    open(d + "/f.txt", "w").write("original\n")
    p = subprocess.Popen(["bulkhead-open-disposable", d + "/f.txt"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        if glob.glob(d + "/.bulkhead-open-*"):
            break
        time.sleep(0.1)
    staged = bool(glob.glob(d + "/.bulkhead-open-*"))
    p.send_signal(sig)
    p.wait()
    print(signal.Signals(sig).name, "staged" if staged else "never-staged", p.returncode, sorted(os.listdir(d)), open(d + "/f.txt").read().strip())
' 2>&1)
[[ $out == $'SIGINT staged -2 [\'f.txt\'] original\nSIGTERM staged -15 [\'f.txt\'] original\nSIGHUP staged -1 [\'f.txt\'] original' ]] \
    && pass "open-interrupted-caller-leaves-no-staging-file" || fail "open-interrupted-caller-leaves-no-staging-file: $out"
rm -f "$SERVICES/bulkhead.OpenInDisposable"

# ---- ask: approve, deny, no answer ----
(echo asked | "$B" run personal -- bulkhead-call vault "$P.Echo" >"$ROOT/ask1.out" 2>&1; echo $? >"$ROOT/ask1.code") &
asker=$!
id=$(pending_id)
listing=$("$B" pending)
[[ -n $id && $listing == *personal*vault*"$P.Echo"* ]] && pass "pending-lists-the-request" || fail "pending-lists-the-request: $listing"
check approve 0 "" -- "$B" approve "$id"
wait "$asker"
[[ $(cat "$ROOT/ask1.code") == 0 && $(cat "$ROOT/ask1.out") == *asked* ]] && pass "approved-call-runs" || fail "approved-call-runs: $(cat "$ROOT/ask1.code") $(cat "$ROOT/ask1.out")"
(echo | "$B" run personal -- bulkhead-call vault "$P.Echo" >"$ROOT/ask2.out" 2>&1; echo $? >"$ROOT/ask2.code") &
asker=$!
id=$(pending_id)
check deny-answer 0 "" -- "$B" deny "$id"
wait "$asker"
[[ $(cat "$ROOT/ask2.code") == 126 && $(cat "$ROOT/ask2.out") == *"denied by the administrator"* ]] && pass "denied-call-exits-126" || fail "denied-call-exits-126: $(cat "$ROOT/ask2.code") $(cat "$ROOT/ask2.out")"
check approve-unknown-id 2 "no pending request 999999" -- "$B" approve 999999
check approve-usage 2 "usage: bulkhead approve" -- "$B" approve
(echo | "$B" run personal -- bulkhead-call vault "$P.Echo" >"$ROOT/ask3.out" 2>&1; echo $? >"$ROOT/ask3.code") &
asker=$!
wait "$asker"
[[ $(cat "$ROOT/ask3.code") == 126 && $(cat "$ROOT/ask3.out") == *"did not answer"* ]] && pass "unanswered-ask-is-denied" || fail "unanswered-ask-is-denied: $(cat "$ROOT/ask3.code") $(cat "$ROOT/ask3.out")"

# ---- file copy ----
check copy-allowed 0 "" -- "$B" run work -- sh -c 'printf "payload\n" > report.txt && mkdir -p dir/sub && echo deep > dir/sub/f && bulkhead-copy research report.txt dir'
check copy-arrived 0 "payload" -- "$B" run research -- cat /home/user/Incoming/work/report.txt
check copy-directory-arrived 0 "deep" -- "$B" run research -- cat /home/user/Incoming/work/dir/sub/f
check copy-never-overwrites 0 "" -- "$B" run work -- sh -c 'echo second > report.txt && bulkhead-copy research report.txt'
check copy-suffix 0 "second" -- "$B" run research -- cat "/home/user/Incoming/work/report.txt (1)"
check copy-first-kept 0 "payload" -- "$B" run research -- cat /home/user/Incoming/work/report.txt
check move-removes-original 0 "gone" -- "$B" run work -- sh -c 'echo m > moved.txt && bulkhead-move research moved.txt && test ! -e moved.txt && echo gone'
check copy-refuses-symlink 2 "" -- "$B" run work -- sh -c 'ln -sf /etc/passwd link && bulkhead-copy research link; exit $(( $? == 0 ? 0 : 2 ))'
check host-copy-from-compartment 0 "" -- "$B" copy work:report.txt research
check host-copy-arrived 0 "second" -- "$B" run research -- cat "/home/user/Incoming/work/report.txt (2)"
check host-file-copy-needs-a-rule 126 "denied by policy (no matching rule)" -- "$B" copy /etc/passwd research
check host-copy-mixed-sources 2 "not both" -- "$B" copy /etc/passwd work:report.txt research
check copy-denied 126 "denied by policy" -- "$B" run personal -- sh -c 'echo x > f && bulkhead-copy work f'
check host-copy-denial-names-rule-on-host 126 "copy: denied by policy (no matching rule)" -- "$B" copy personal:f work

# ---- the clipboard: copy anywhere, paste is the call CLIPBOARD-SOURCE -> paster ----
check clip-copy 0 "" -- "$B" run work -- sh -c 'echo clip-secret | bulkhead-clip copy'
check clip-paste-denied 126 "denied by policy" -- "$B" run vault -- bulkhead-clip paste
check clip-paste-allowed 0 "clip-secret" -- "$B" run research -- bulkhead-clip paste
check clip-emptied-by-paste 1 "the clipboard is empty" -- "$B" run research -- bulkhead-clip paste
check clip-usage 2 "usage: bulkhead-clip" -- "$B" run work -- bulkhead-clip frobnicate
check clip-too-large 2 "at most 1 MiB" -- "$B" run work -- sh -c 'head -c 1100000 /dev/zero | bulkhead-clip copy'

# ---- policy check and lint ----
check policy-check-allow 0 "allow ($ROOT/etc/policy.d/10-calls.policy:2)" -- "$B" policy check work vault "$P.Echo"
check policy-check-deny 1 "deny (no matching rule)" -- "$B" policy check vault work "$P.Echo"
out=$("$B" policy check --explain work vault "$P.Status" 2>&1)
[[ $out == *"10-calls.policy:2: no:"* && $out == *"10-calls.policy:7: matches"* && $out == *"allow ("* ]] && pass "policy-check-explain" || fail "policy-check-explain: $out"
check policy-lint-clean 0 "15 rules, 0 warnings" -- "$B" policy lint "$ROOT/etc/policy.d"
mkdir -p "$ROOT/lint/policy.d"
cp "$ROOT/etc/system.toml" "$ROOT/lint/"
printf 'x.Y * @any @any allow\nx.Y * work vault deny\nx.Z * nosuch vault allow\n' >"$ROOT/lint/policy.d/a.policy"
out=$("$B" policy lint "$ROOT/lint/policy.d" 2>&1)
[[ $out == *"a.policy:2:1: warning:"*"a.policy:1"* && $out == *"a.policy:3:"*"warning:"*nosuch* ]] && pass "policy-lint-warns" || fail "policy-lint-warns: $out"

# ---- an invalid policy is refused as a whole; the last valid one stays ----
cp -r "$ROOT/etc" "$ROOT/bad"
printf '%s.Echo * work vault alow\n' "$P" >>"$ROOT/bad/policy.d/10-calls.policy"
check invalid-policy-refused 2 "10-calls.policy:13:" -- "$B" apply "$ROOT/bad/system.toml"
check old-policy-still-in-force 0 "uid=1000" -- "$B" run work -- sh -c "echo | bulkhead-call vault $P.Echo"

# ---- the policy belongs to its generation: rollback brings it back; an edit on disk needs an apply ----
printf '%s.Empty * work vault deny\n' "$P" >"$ROOT/etc/policy.d/05-generation.policy"
check generation-policy-applied 0 "policy: 16 rules" -- "$B" apply "$ROOT/etc/system.toml"
check generation-new-policy-denies 126 "denied by policy" -- "$B" run work -- bulkhead-call vault "$P.Empty"
[[ $(last_rule "$P.Empty") == "deny $ROOT/etc/policy.d/05-generation.policy:1"* ]] && pass "generation-new-policy-rule-in-audit" || fail "generation-new-policy-rule-in-audit: $(last_rule "$P.Empty")"
check rollback-restores-policy 0 "15 rules from $ROOT/etc/policy.d as applied with generation 1" -- "$B" rollback
check rollback-policy-allows-again 0 "" -- "$B" run work -- bulkhead-call vault "$P.Empty"
# After a rollback the files on disk (with 05-generation.policy) are not the policy in force: check says so.
check policy-check-says-the-files-differ 0 "differ from the policy in force" -- "$B" policy check work vault "$P.Empty"
# A broken file in policy.d (not applied) does not keep a restarted broker from starting: it starts
# with the policy of its current generation.
printf 'this is not a rule\n' >"$ROOT/etc/policy.d/06-broken.policy"
kill "$DAEMON"
wait "$DAEMON" 2>/dev/null
start_daemon --ask-timeout 10
grep -q "policy: 15 rules from $ROOT/etc/policy.d as applied with generation" "$LOG" && pass "restart-uses-generation-policy" || fail "restart-uses-generation-policy: $(grep 'policy:' "$LOG" | tail -2)"
check restart-policy-in-force 0 "" -- "$B" run work -- bulkhead-call vault "$P.Empty"
check broken-edit-refused-at-apply 2 "06-broken.policy:1:" -- "$B" apply "$ROOT/etc/system.toml"
rm -f "$ROOT/etc/policy.d/05-generation.policy" "$ROOT/etc/policy.d/06-broken.policy"

# ---- hostile callers: garbage and impostor hellos are cut off, nothing else happens ----
out=$("$B" run work -- python3 -c '
import socket
for payload in [b"\xff" * 100, b"\x10\x01\x00\x00\x00\x00\x00\x00\x00", b"\x20" + b"\x00" * 600]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect("/run/bulkhead/agent.sock")
    s.send(payload)
    print("closed" if s.recv(100) == b"" else "answered")
' 2>&1)
[[ $out == $'closed\nclosed\nclosed' ]] && pass "hostile-caller-records-disconnected" || fail "hostile-caller-records-disconnected: $out"
[[ $(json_field work state) == running ]] && pass "hostile-caller-does-not-stop-its-compartment" || fail "hostile-caller-does-not-stop-its-compartment"

# ---- a flood: 1000 calls at once all succeed (throttled, served in turn); 3000 more in a loop leave
# the broker's memory bounded; the other compartment is never throttled ----
rss() { awk '/VmRSS/ {print $2}' "/proc/$DAEMON/status"; }
before=$(rss)
out=$("$B" run work -- bash -c "for i in \$(seq 1000); do { bulkhead-call vault $P.Empty </dev/null && echo ok; } & done; wait" 2>"$ROOT/flood.err" | grep -c ok)
[[ $out == 1000 ]] && pass "1000-concurrent-calls-all-succeed" \
    || fail "1000-concurrent-calls-all-succeed: $out; $(sort "$ROOT/flood.err" | uniq -c | head -3); broker: $(grep -E 'vault|work' "$LOG" | grep -v throttled | tail -5)"
check other-compartment-served-during-flood 0 "" -- "$B" run research -- bulkhead-call vault "$P.Empty"
# 1000 calls are more than the burst of 200: the broker says it throttles work, and only work.
grep -q "work: calls throttled: more than 200 at once, then [0-9]* per second" "$LOG" && ! grep -q "research: calls throttled" "$LOG" \
    && pass "flooding-compartment-throttled" || fail "flooding-compartment-throttled: $(grep throttled "$LOG" | head -3)"
"$B" run work -- sh -c "for i in \$(seq 3000); do bulkhead-call vault $P.Empty </dev/null >/dev/null 2>&1; done" &
flood=$!
sleep 2
check other-compartment-served-during-loop 0 "" -- "$B" run research -- bulkhead-call vault "$P.Empty"
wait $flood
after=$(rss)
if [[ ${BULKHEAD_SANITIZED:-} == 1 ]]; then
    # AddressSanitizer keeps freed memory in quarantine (up to 256 MiB): resident memory says nothing there.
    echo "skip broker-rss-bounded-after-flood (sanitizer build: $before -> $after KiB)"
else
    (( after - before < 8192 )) && pass "broker-rss-bounded-after-flood ($before -> $after KiB)" || fail "broker-rss-bounded-after-flood: $before -> $after KiB"
fi

# ---- the audit log ----
out=$("$B" audit --json)
[[ $out == *'"verdict":"allow"'* && $out == *'"verdict":"deny"'* && $out == *'"verdict":"approved"'* && $out == *'"verdict":"timeout"'* && $out == *'"service":"apply"'* || $out == *'"verdict":"allow"'*'"verdict":"deny"'* ]] \
    && pass "audit-records-decisions" || fail "audit-records-decisions: $(head -c 600 <<<"$out")"
[[ $out == *"10-calls.policy:2"* && $out != *payload* && $out != *asked* && $out != *clip-secret* ]] && pass "audit-names-rule-never-content" || fail "audit-names-rule-never-content"
check audit-verify-intact 0 "chain intact" -- "$B" audit verify
python3 - "$ROOT/state/audit.log" <<'EOF'
import sys
path = sys.argv[1]
lines = open(path).read().split("\n")
lines[2] = lines[2].replace('"verdict":"', '"verdict":"x', 1)
open(path, "w").write("\n".join(lines))
EOF
check audit-verify-finds-edit 1 "line 3" -- "$B" audit verify

echo "calls_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
