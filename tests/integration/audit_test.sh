#!/usr/bin/env bash
# End-to-end checks of the audit log under attack and under pressure: the real bulkhead binary
# against a real broker whose STATE is a small tmpfs of its own.
#  - a compartment flooding denied calls grows the log by records per window, not per call, and
#    every call is still accounted for (first record + "denied N more times");
#  - the log rotates at a small size (--audit-file-size), keeps --audit-keep-files rotated files,
#    records what it removed; `audit`, `audit --follow` and `audit verify` work across the files;
#    tampering in an old file is found and named, a file deleted outside the broker is reported;
#  - fail closed: below the reserve kept for the state database (--state-reserve) an allowed call
#    is refused (125) instead of made unaudited, and works again once space is back; with the
#    filesystem completely full a compartment can still be stopped, and starting one says why not.
# Usage: audit_test.sh PATH/TO/bulkhead
set -u
BULKHEAD=$(realpath "${1:?usage: audit_test.sh PATH/TO/bulkhead}")
ROOT=$(mktemp -d /tmp/bulkhead-audit-test-XXXXXX)
STATE=$ROOT/state
LOG=$ROOT/daemon.log
DAEMON=
FOLLOW=
export BULKHEAD_SOCKET=$ROOT/run/admin.sock
SERVICES=/usr/lib/bulkhead/services
P=bulkhead-test-$$

cleanup() {
    [[ -n $FOLLOW ]] && kill "$FOLLOW" 2>/dev/null
    rm -f "$STATE"/filler*
    if [[ -n $DAEMON ]]; then
        stop_compartments
        kill "$DAEMON" 2>/dev/null
        wait "$DAEMON" 2>/dev/null
    fi
    rm -f "$SERVICES/$P".*
    rmdir "$SERVICES" /usr/lib/bulkhead 2>/dev/null
    umount "$STATE" 2>/dev/null || umount -l "$STATE" 2>/dev/null
    [[ -n ${KEEP:-} ]] || rm -rf "$ROOT"
}
trap cleanup EXIT

# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
B=$BULKHEAD

mkdir -p "$STATE" "$ROOT/etc/policy.d" "$SERVICES"
mount -t tmpfs -o size=48m,mode=0700 bulkhead-audit-test "$STATE" || { echo "cannot mount a tmpfs for STATE"; exit 1; }
cat >"$ROOT/etc/system.toml" <<'EOF'
[templates.host]
kind = "host"

[compartments.work]
label = "blue"

[compartments.vault]
label = "black"

[compartments.untrusted]
label = "red"
EOF
cat >"$ROOT/etc/policy.d/10-audit.policy" <<EOF
$P.Empty   *  work       vault  allow
$P.Empty   *  untrusted  vault  allow
$P.Denied  *  untrusted  vault  deny
EOF
printf '#!/bin/sh\nexit 0\n' >"$SERVICES/$P.Empty"
chmod 755 "$SERVICES/$P.Empty"

start_daemon() {
    "$B" daemon --root "$ROOT" --config "$ROOT/etc/system.toml" --audit-file-size 8K --audit-keep-files 3 \
        --state-reserve 4M >>"$LOG" 2>&1 &
    DAEMON=$!
    for _ in $(seq 100); do
        "$B" ls >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "the daemon did not come up:"
    cat "$LOG"
    exit 1
}
start_daemon
for name in work vault untrusted; do "$B" start "$name" >/dev/null || fail "start-$name"; done

# The records of the whole log (every kept file), as JSON lines.
records() { "$B" audit --json; }
# Denials of untrusted -> vault SERVICE: "RECORDS ACCOUNTED" (a record stands for itself, a summary
# for the N more it counted).
denials() {
    records | python3 -c '
import json, re, sys
service = sys.argv[1]
records = accounted = 0
for line in sys.stdin:
    r = json.loads(line)
    if r["caller"] != "untrusted" or r["verdict"] != "deny" or r["service"] not in (service, "*"):
        continue
    records += 1
    more = re.search(r"denied (\d+) more", r["detail"])
    accounted += int(more.group(1)) if more else 1
print(records, accounted)' "$1"
}
log_bytes() { cat "$STATE"/audit.log* | wc -c; }

# ---- a flood of denied calls: records per window, every call accounted for ----
calls=600
begin=$(date +%s)
"$B" run untrusted -- sh -c "for i in \$(seq $calls); do bulkhead-call vault $P.Denied </dev/null 2>/dev/null; done"
elapsed=$(($(date +%s) - begin + 1))
# The summary comes when the window ends (the broker's timer): wait for it, however long that takes.
for _ in $(seq 300); do
    read -r written accounted < <(denials "$P.Denied")
    [[ $accounted -ge $calls ]] && break
    sleep 0.1
done
[[ $accounted -eq $calls ]] && pass "flood-every-denial-accounted ($calls calls)" || fail "flood-every-denial-accounted: $accounted of $calls"
# One kind of denial: the first of each 10 s window and its summary.
bound=$((2 * (elapsed / 10 + 2)))
[[ $written -le $bound ]] && pass "flood-records-per-window ($written records for $calls calls in ${elapsed}s)" \
    || fail "flood-records-per-window: $written records for $calls calls in ${elapsed}s (at most $bound)"
records | grep -q "\"caller\":\"untrusted\".*\"detail\":\"denied [0-9]* more times in" && pass "flood-summary-record" || fail "flood-summary-record"

# Varying the argument does not undo the counting; an allowed call of the same caller comes after
# the summaries of what it did before.
begin=$(date +%s)
"$B" run untrusted -- sh -c "for i in \$(seq 200); do bulkhead-call vault $P.Denied+v\$i </dev/null 2>/dev/null; done; bulkhead-call vault $P.Empty </dev/null"
elapsed=$(($(date +%s) - begin + 1))
read -r written accounted < <(denials "$P.Denied")
[[ $accounted -eq $((calls + 200)) ]] && pass "varied-arguments-accounted" || fail "varied-arguments-accounted: $accounted of $((calls + 200))"
# Per 10 s window: at most 8 kinds written, their summaries, and one for all the other kinds.
bound=$((bound + (2 * 8 + 1) * (elapsed / 10 + 1)))
[[ $written -le $bound ]] && pass "varied-arguments-bounded ($written records for 200 calls in ${elapsed}s)" \
    || fail "varied-arguments-bounded: $written records for 200 calls in ${elapsed}s (at most $bound)"
order=$(records | python3 -c '
import json, sys
last_summary = allow = None
for line in sys.stdin:
    r = json.loads(line)
    if r["caller"] == "untrusted" and "of other kinds" in r["detail"]:
        last_summary = r["seq"]
    if r["caller"] == "untrusted" and r["verdict"] == "allow":
        allow = r["seq"]
print("summary-first" if last_summary and allow and last_summary < allow else f"{last_summary} {allow}")')
[[ $order == summary-first ]] && pass "summaries-before-the-callers-next-record" || fail "summaries-before-the-callers-next-record: $order"
size=$(log_bytes)
((size < 4 * 9 * 1024)) && pass "log-bounded-by-rotation ($size bytes)" || fail "log-bounded-by-rotation: $size bytes"

# ---- rotation: across files, with --follow watching ----
"$B" audit --follow --json >"$ROOT/follow.out" 2>&1 &
FOLLOW=$!
# Paced (about 50 records a second): --follow polls every quarter second, and what rotation removes
# before a follower reads it is gone by design; a fast machine would otherwise outrun it.
"$B" run work -- sh -c "for i in \$(seq 150); do bulkhead-call vault $P.Empty </dev/null || exit 1; sleep 0.02; done"
mapfile -t rotated < <(cd "$STATE" && ls audit.log.* | sort -t. -k3 -n)
[[ ${#rotated[@]} -eq 3 && ${rotated[0]} != audit.log.1 ]] && pass "rotation-keeps-3-files (${rotated[*]})" || fail "rotation-keeps-3-files: ${rotated[*]}"
grep -q "audit log: removed audit.log.1 (seqs 1 to " "$LOG" && pass "rotation-removal-logged" || fail "rotation-removal-logged: $(grep 'audit log' "$LOG" | head -3)"
check verify-across-files 0 "chain intact" -- "$B" audit verify
out=$("$B" audit verify)
[[ $out == *"were removed by the broker's rotation"* && $out == *"4 files"* ]] && pass "verify-says-what-rotation-removed" || fail "verify-says-what-rotation-removed: $out"
last=$(records | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])')
first_kept=${rotated[0]#audit.log.}
contiguous=$(records | python3 -c '
import json, sys
seqs = [json.loads(l)["seq"] for l in sys.stdin]
print(seqs[0], seqs[-1], all(b == a + 1 for a, b in zip(seqs, seqs[1:])))')
[[ $contiguous == "$first_kept $last True" ]] && pass "audit-reads-every-kept-file" || fail "audit-reads-every-kept-file: $contiguous (first kept $first_kept, last $last)"
for _ in $(seq 100); do
    grep -q "\"seq\":$last," "$ROOT/follow.out" && break
    sleep 0.1
done
kill "$FOLLOW" 2>/dev/null
wait "$FOLLOW" 2>/dev/null
FOLLOW=
followed=$(python3 -c '
import json, sys
seqs = [json.loads(l)["seq"] for l in open(sys.argv[1]) if l.startswith("{")]
print(seqs[-1], all(b == a + 1 for a, b in zip(seqs, seqs[1:])))' "$ROOT/follow.out")
[[ $followed == "$last True" ]] && pass "follow-goes-on-across-rotation" || fail "follow-goes-on-across-rotation: $followed (last $last)"

# ---- tampering in an old file is found and named; a file deleted outside the broker too ----
old=$STATE/${rotated[1]}
cp -p "$old" "$ROOT/saved"
sed -i '4s/"time":"2/"time":"1/' "$old"
check verify-names-tampered-file 1 "${rotated[1]} line 4 (seq" -- "$B" audit verify
cp -p "$ROOT/saved" "$old"
check verify-intact-after-restore 0 "chain intact" -- "$B" audit verify
oldest=$STATE/${rotated[0]}
mv "$oldest" "$ROOT/saved"
check verify-finds-deleted-file 1 "(from ${rotated[0]} on) were removed outside the broker" -- "$B" audit verify
mv "$ROOT/saved" "$oldest"
mv "$STATE/${rotated[1]}" "$ROOT/saved"
check verify-finds-deleted-middle-file 1 "between ${rotated[0]} and ${rotated[2]}" -- "$B" audit verify
mv "$ROOT/saved" "$STATE/${rotated[1]}"
check verify-intact-again 0 "chain intact" -- "$B" audit verify

# ---- fail closed: below the reserve, an allowed call is refused, not made unaudited ----
free=$(df --output=avail -B1 "$STATE" | tail -1)
fallocate -l $((free - 2 * 1024 * 1024)) "$STATE/filler" || fail "fill-state"
before=$(records | tail -1)
check full-allowed-call-refused 125 "cannot record the call in its audit log" -- "$B" run work -- bulkhead-call vault "$P.Empty"
check full-denied-call-still-denied 126 "denied" -- "$B" run untrusted -- bulkhead-call vault "$P.Denied+full"
[[ $(records | tail -1) == "$before" ]] && pass "full-nothing-written" || fail "full-nothing-written"
grep -q "audit log: cannot write a record (audit log: its filesystem has .* free, and 4.0 MiB are kept for the state database" "$LOG" \
    && pass "full-said-loudly" || fail "full-said-loudly: $(grep 'audit log' "$LOG" | tail -2)"
check full-again-refused 125 "cannot record" -- "$B" run work -- bulkhead-call vault "$P.Empty"
[[ $(grep -c "audit log: cannot write a record" "$LOG") -eq 1 ]] && pass "full-said-once-a-minute" || fail "full-said-once-a-minute: $(grep -c 'cannot write a record' "$LOG")"
rm -f "$STATE/filler"
check space-back-call-works 0 "" -- "$B" run work -- bulkhead-call vault "$P.Empty"
gap=$(records | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r["kind"] == "admin" and r["service"] == "audit" and r["verdict"] == "failed":
        print(r["detail"])')
[[ $gap == "3 records could not be written since "*"kept for the state database"* ]] && pass "space-back-gap-recorded ($gap)" \
    || fail "space-back-gap-recorded: $gap"
check space-back-verify 0 "chain intact" -- "$B" audit verify

# ---- the filesystem completely full: stopping still works, starting says why not ----
free=$(df --output=avail -B1 "$STATE" | tail -1)
fallocate -l "$free" "$STATE/filler" 2>/dev/null || head -c "$free" /dev/zero >"$STATE/filler" 2>/dev/null
check full-disk-call-refused 125 "cannot record the call in its audit log" -- "$B" run work -- bulkhead-call vault "$P.Empty"
check full-stop-works 0 "" -- "$B" stop vault
[[ $(json_field vault state) == stopped ]] && pass "full-vault-stopped" || fail "full-vault-stopped: $(json_field vault state)"
out=$("$B" start vault 2>&1)
code=$?
[[ $code -eq 125 && ( $out == *"full"* || $out == *"No space"* || $out == *"audit log"* ) ]] && pass "full-start-says-why ($out)" || fail "full-start-says-why: exit $code: $out"
rm -f "$STATE/filler"
check space-back-start-works 0 "" -- "$B" start vault

# ---- a restarted broker goes on with the chain across the files ----
kill "$DAEMON"
wait "$DAEMON" 2>/dev/null
start_daemon
check restart-call-works 0 "" -- "$B" run work -- bulkhead-call vault "$P.Empty"
check restart-verify 0 "chain intact" -- "$B" audit verify
! grep -q "records were removed or changed while no broker ran" "$LOG" && pass "restart-head-matches" || fail "restart-head-matches"

echo "audit_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
