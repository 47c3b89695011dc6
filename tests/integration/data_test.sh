#!/usr/bin/env bash
# Central user data (issue 15): volumes owned by no compartment and shown to each as its own user
# through idmapped mounts; live grants and revokes; files between the host and compartments. Attacks
# from inside: root inside writing through a read-only volume or grant, links planted in a shared
# volume, a rename race while a grant is made, a planted link copied out to the host.
# Usage: data_test.sh PATH/TO/bulkhead
set -u
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
broker_test_setup data "${1:-}"
NEUTRAL=1073741822
VOLUMES=$ROOT/state/volumes

# ---- an upgrade: a volume folder as an older bulkhead left it (owned by work's host uid) ----
mkdir -p "$VOLUMES/documents/work/old"
echo "written before" >"$VOLUMES/documents/work/old/letter.txt"
ln -s /etc/shadow "$VOLUMES/documents/work/old/link"
chown -R 1140000000:1140000000 "$VOLUMES/documents"
chown -h 1140000000:1140000000 "$VOLUMES/documents/work/old/link"
chmod 0700 "$VOLUMES/documents" "$VOLUMES/documents/work"

mkdir -p "$ROOT/etc"
cat >"$ROOT/etc/system.toml" <<'EOF2'
[templates.host]
kind = "host"

[volumes.documents]

[volumes.music]

[compartments.work]
label = "blue"
mounts = [ { volume = "documents", path = "work", at = "Documents", mode = "rw" } ]

[compartments.mail]
label = "green"
mounts = [ { volume = "documents", path = "work", at = "Documents", mode = "ro" } ]

[compartments.other]
label = "red"
EOF2
start_daemon --config "$ROOT/etc/system.toml"

owners() { find "$VOLUMES/documents" -printf '%U:%G\n' | sort -u | tr '\n' ' '; }
[[ $(owners) == "$NEUTRAL:$NEUTRAL " ]] && pass "upgrade-gives-every-file-to-the-neutral-owner" || fail "upgrade-gives-every-file-to-the-neutral-owner: $(owners)"
[[ $(cat "$VOLUMES/documents/work/old/letter.txt") == "written before" ]] && pass "upgrade-loses-nothing" || fail "upgrade-loses-nothing"
[[ $(stat -c %U /etc/shadow) == root ]] && pass "upgrade-follows-no-link" || fail "upgrade-follows-no-link: /etc/shadow is $(stat -c %U /etc/shadow)"
grep -q "entries given to their neutral owner" "$LOG" && pass "upgrade-logged" || fail "upgrade-logged"

# ---- sharing: rw in work, ro in mail, both as their own user ----
check work-reads-the-old-file 0 "written before" -- "$B" run work -- cat Documents/old/letter.txt
check work-writes 0 "" -- "$B" run work -- sh -c 'echo from-work > Documents/new.txt && mkdir Documents/sub'
check work-sees-itself-as-owner 0 "user user" -- "$B" run work -- stat -c '%U %G' Documents/new.txt
check mail-reads-what-work-wrote 0 "from-work" -- "$B" run mail -- cat Documents/new.txt
check mail-sees-itself-as-owner 0 "user" -- "$B" run mail -- stat -c '%U' Documents/new.txt
check mail-cannot-write 1 "Read-only file system" -- "$B" run mail -- touch Documents/mail.txt
check root-in-mail-cannot-write 1 "" -- "$B" run --user root mail -- touch /home/user/Documents/mail.txt
check root-in-mail-cannot-remount 32 "" -- "$B" run --user root mail -- mount -o remount,rw /home/user/Documents
check root-in-mail-cannot-chmod 1 "" -- "$B" run --user root mail -- chmod 777 /home/user/Documents/new.txt
[[ $(stat -c '%u' "$VOLUMES/documents/work/new.txt") == "$NEUTRAL" ]] && pass "host-sees-the-neutral-owner" || fail "host-sees-the-neutral-owner: $(stat -c '%u' "$VOLUMES/documents/work/new.txt")"
check root-in-work-cannot-create-as-root 1 "" -- "$B" run --user root work -- touch /home/user/Documents/root.txt
check root-in-work-cannot-chown 1 "" -- "$B" run --user root work -- chown 0:0 /home/user/Documents/new.txt
[[ ! -e $VOLUMES/documents/work/root.txt && ! -e $VOLUMES/documents/work/mail.txt && $(stat -c %a "$VOLUMES/documents/work/new.txt") == 644 ]] && pass "no-file-of-root-inside" || fail "no-file-of-root-inside"
check setuid-not-kept 0 "" -- "$B" run work -- sh -c 'cp /bin/true Documents/suid && chmod u+s Documents/suid'
[[ $(stat -c '%u' "$VOLUMES/documents/work/suid") == "$NEUTRAL" ]] && pass "setuid-file-belongs-to-the-neutral-owner" || fail "setuid-file-belongs-to-the-neutral-owner"

# Links planted in the shared volume resolve inside the compartment that follows them, never on the host.
check work-plants-links 0 "" -- "$B" run work -- sh -c 'ln -s /home/user/secret Documents/to-secret && ln -s /etc/shadow Documents/to-shadow'
check mail-follows-to-its-own-home 1 "" -- "$B" run mail -- cat Documents/to-secret
check mail-cannot-read-shadow-through-link 1 "" -- "$B" run mail -- cat Documents/to-shadow
check hard-link-across-mounts-refused 1 "" -- "$B" run work -- ln /etc/hostname Documents/hostname


# ---- live grants ----
check grant-needs-a-running-compartment 2 "is not running" -- "$B" grant other music
# (work and mail run since their commands above)
check grant-rw-now 0 "rw at /home/user/Music" -- "$B" grant work music --rw --at Music
check granted-folder-writable 0 "" -- "$B" run work -- sh -c 'echo song > Music/song.txt'
[[ $(stat -c '%u' "$VOLUMES/music/song.txt" 2>/dev/null) == "$NEUTRAL" ]] && pass "granted-file-belongs-to-the-neutral-owner" || fail "granted-file-belongs-to-the-neutral-owner"
check grant-ro-by-default 0 "ro at /home/user/music" -- "$B" grant mail music
check ro-grant-readable 0 "song" -- "$B" run mail -- cat music/song.txt
check ro-grant-not-writable 1 "Read-only file system" -- "$B" run mail -- touch music/other.txt
check ro-grant-not-writable-as-root 1 "" -- "$B" run --user root mail -- touch /home/user/music/other.txt
check show-lists-mounts-and-grants 0 "(granted)" -- "$B" show work
mounts=$("$B" ls --json | python3 -c 'import json,sys; c=[c for c in json.load(sys.stdin)["compartments"] if c["name"]=="work"][0]; print(" ".join(m["volume"]+":"+m["mode"]+":"+str(m["granted"]) for m in c["mounts"]))')
[[ $mounts == "documents/work:rw:False music:rw:True" ]] && pass "ls-json-lists-mounts" || fail "ls-json-lists-mounts: $mounts"
grep -q '"grant".*"music"' "$ROOT/state/audit.log" && pass "grant-audited" || fail "grant-audited"

# bad input: a clear error, nothing done
check grant-unknown-volume 2 "no volume named 'films'" -- "$B" grant work films
check grant-missing-folder 2 "does not exist" -- "$B" grant work documents/nothing
check grant-dotdot 2 "'.' or '..'" -- "$B" grant work documents/../music
check grant-twice 2 "already has music" -- "$B" grant work music
check grant-at-taken-by-a-mount 2 "taken by its mount of documents" -- "$B" grant work music/x --at Documents 2>/dev/null
check grant-at-dotdot 2 "'.' or '..'" -- "$B" grant work documents --at ../escape
ln -s /etc "$VOLUMES/music/link"
check grant-through-a-link-refused 2 "symbolic link" -- "$B" grant work music/link
check revoke-not-granted 2 "has no grant of documents" -- "$B" revoke work documents
check revoke-unknown-compartment 2 "is not running" -- "$B" revoke other music

# a link planted where the grant goes: refused, nothing mounted through it
check work-plants-a-link-at-the-mount-point 0 "" -- "$B" run work -- ln -s /etc Trap
mkdir -p "$VOLUMES/music/sub"
check grant-at-a-planted-link-refused 125 "link" -- "$B" grant work music/sub --at Trap/x
check etc-untouched-inside 0 "passwd" -- "$B" run work -- ls /etc

# a rename race while grants are made: each grant finds the real folder or refuses; never a link
mkdir -p "$VOLUMES/documents/work/race"
echo real >"$VOLUMES/documents/work/race/marker"
chown -R $NEUTRAL:$NEUTRAL "$VOLUMES/documents/work/race"
"$B" run work -- sh -c 'for i in $(seq 400); do mv Documents/race Documents/race.away && ln -s /etc Documents/race && rm Documents/race && mv Documents/race.away Documents/race; done' >/dev/null 2>&1 &
racer=$!
raced_ok=0 raced_refused=0 raced_bad=0
for i in $(seq 20); do
    if "$B" grant mail documents/work/race --at Race >/dev/null 2>&1; then
        if "$B" run mail -- cat Race/marker 2>/dev/null | grep -q real; then raced_ok=$((raced_ok + 1)); else raced_bad=$((raced_bad + 1)); fi
        "$B" revoke mail documents/work/race >/dev/null 2>&1
    else
        raced_refused=$((raced_refused + 1))
    fi
done
wait $racer
[[ $raced_bad -eq 0 && $((raced_ok + raced_refused)) -eq 20 ]] && pass "rename-race-never-grants-a-link ($raced_ok granted, $raced_refused refused)" \
    || fail "rename-race-never-grants-a-link: $raced_ok ok, $raced_refused refused, $raced_bad wrong"

# revoke: gone at once, and whoever holds it open is killed
"$B" run work -- sh -c 'exec 3<Music/song.txt; echo holding; exec sleep 60' >"$ROOT/holder.out" 2>&1 &
holder=$!
"$B" run work -- sh -c 'cd Music && exec sleep 60' >/dev/null 2>&1 &
cwd_holder=$!
for _ in $(seq 50); do grep -q holding "$ROOT/holder.out" && break; sleep 0.1; done
sleep 0.3
check revoke-kills-the-holders 0 "2 process(es)" -- "$B" revoke work music
wait $holder; holder_code=$?
wait $cwd_holder; cwd_code=$?
[[ $holder_code -eq 137 && $cwd_code -eq 137 ]] && pass "holders-ended" || fail "holders-ended: $holder_code $cwd_code"
check revoked-folder-gone 0 "" -- "$B" run work -- sh -c '! test -e Music/song.txt'
check revoked-is-empty-mount-point 0 "" -- "$B" run work -- sh -c 'test -z "$(ls -A Music)"'
grep -q '"revoke".*"music"' "$ROOT/state/audit.log" && pass "revoke-audited" || fail "revoke-audited"
# A holder that keeps forking children (each inherits the descriptor) while the revoke looks: the
# compartment is held still during the look, so no child escapes it.
check regrant 0 "" -- "$B" grant work music --rw --at Music
"$B" run work -- sh -c 'exec 3<Music/song.txt; echo forking; while :; do sleep 60 & sleep 0.005; done' >"$ROOT/forker.out" 2>&1 &
forker=$!
"$B" run work -- sleep 30 >/dev/null 2>&1 & # holds nothing: held still during the look, then let go
bystander=$!
for _ in $(seq 50); do grep -q forking "$ROOT/forker.out" && break; sleep 0.1; done
sleep 0.5
check revoke-a-forking-holder 0 "revoked" -- "$B" revoke work music
wait $forker
check no-descriptor-of-the-revoked-folder-left 0 "none" -- "$B" run work -- sh -c \
    'for f in /proc/[0-9]*/fd/*; do readlink "$f"; done 2>/dev/null | grep -q song.txt || echo none'
check survivors-not-left-stopped 0 "" -- "$B" run work -- sh -c '! grep -l "^State:.*T (stopped)" /proc/[0-9]*/status 2>/dev/null | grep -q .'
kill -0 $bystander 2>/dev/null && pass "bystander-still-running" || fail "bystander-still-running"
kill $bystander 2>/dev/null; wait $bystander 2>/dev/null

# grants survive a broker restart (the compartments run on)
kill "$DAEMON"; wait "$DAEMON" 2>/dev/null
start_daemon --config "$ROOT/etc/system.toml"
check grant-known-after-restart 0 "(granted)" -- "$B" show mail
check revoke-after-restart 0 "revoked" -- "$B" revoke mail music
check revoked-after-restart-gone 1 "" -- "$B" run mail -- cat music/song.txt

# ---- files between the host and compartments ----
mkdir -p "$ROOT/etc/policy.d" "$ROOT/host/tree/sub"
cat >"$ROOT/etc/policy.d/10-data.policy" <<'EOF2'
bulkhead.Filecopy  *  @host  work   allow
bulkhead.Filecopy  *  @host  mail   ask
bulkhead.Filecopy  *  work   @host  allow
bulkhead.Filecopy  *  mail   @host  ask
EOF2
check apply-policy 0 "" -- "$B" apply "$ROOT/etc/system.toml"
echo "host letter" >"$ROOT/host/letter.txt"
echo nested >"$ROOT/host/tree/sub/deep.txt"
check copy-in 0 "" -- "$B" copy "$ROOT/host/letter.txt" "$ROOT/host/tree" work
check copy-in-arrived 0 "host letter" -- "$B" run work -- cat Incoming/host/letter.txt
check copy-in-tree-arrived 0 "nested" -- "$B" run work -- cat Incoming/host/tree/sub/deep.txt
check copy-in-owned-by-the-user 0 "user" -- "$B" run work -- stat -c %U Incoming/host/letter.txt
check copy-in-never-overwrites 0 "" -- "$B" copy "$ROOT/host/letter.txt" work
check copy-in-second-copy-beside 0 "2" -- "$B" run work -- sh -c 'ls Incoming/host | grep -c letter'
check copy-in-ask-is-consented 0 "" -- timeout 20 "$B" copy "$ROOT/host/letter.txt" mail
grep -q '"@host".*"mail".*"bulkhead.Filecopy".*"approved"' "$ROOT/state/audit.log" && pass "copy-in-consent-recorded" || fail "copy-in-consent-recorded"
check copy-in-denied 126 "denied by policy" -- "$B" copy "$ROOT/host/letter.txt" other
ln -s /etc/shadow "$ROOT/host/shadow-link"
check copy-in-link-refused 125 "link" -- "$B" copy "$ROOT/host/shadow-link" work
check copy-in-missing 2 "No such file" -- "$B" copy "$ROOT/host/missing.txt" work
check copy-in-mixed 2 "not both" -- "$B" copy "$ROOT/host/letter.txt" work:x mail

DEST=$ROOT/dest
mkdir -p "$DEST"
chown 65534:65534 "$DEST"
check work-writes-files 0 "" -- "$B" run work -- sh -c 'echo outbound > out.txt && mkdir -p outdir/in && echo x > outdir/in/y.txt && ln -s /etc/shadow planted'
check copy-out 0 "" -- "$B" copy work:out.txt work:outdir "$DEST/"
[[ $(cat "$DEST/out.txt" 2>/dev/null) == outbound && -f $DEST/outdir/in/y.txt ]] && pass "copy-out-arrived" || fail "copy-out-arrived"
[[ $(stat -c %u "$DEST/out.txt" 2>/dev/null) == 65534 ]] && pass "copy-out-written-as-the-destinations-owner" || fail "copy-out-written-as-the-destinations-owner: $(stat -c %u "$DEST/out.txt" 2>/dev/null)"
check copy-out-never-overwrites 0 "" -- "$B" copy work:out.txt "$DEST/"
[[ $(ls "$DEST" | grep -c out.txt) -eq 2 && $(cat "$DEST/out.txt") == outbound ]] && pass "copy-out-second-copy-beside" || fail "copy-out-second-copy-beside: $(ls "$DEST")"
check copy-out-planted-link-refused 125 "link" -- "$B" copy work:planted "$DEST/"
[[ ! -e $DEST/planted && ! -L $DEST/planted ]] && pass "copy-out-no-link-on-the-host" || fail "copy-out-no-link-on-the-host"
mkdir -p "$ROOT/rootdir"
check copy-out-root-destination-refused 2 "belongs to root" -- "$B" copy work:out.txt "$ROOT/rootdir/"
check copy-out-not-a-directory 2 "not a directory" -- "$B" copy work:out.txt "$ROOT/host/letter.txt/"
check copy-out-ask-is-consented 0 "" -- timeout 20 "$B" copy mail:Documents/new.txt "$DEST/"
check copy-out-denied 126 "denied by policy" -- "$B" copy other:x "$DEST/"
[[ -z $(find "$DEST" -user 0) ]] && pass "nothing-on-the-host-owned-by-root" || fail "nothing-on-the-host-owned-by-root"

# ---- instances (docs/examples/instances.toml): one template, two compartments, two folders ----
check instances-apply 0 "" -- "$B" apply "$(dirname "$BASH_SOURCE")/../../docs/examples/instances.toml"
check writer-work-writes 0 "" -- "$B" run writer-work -- sh -c 'echo at-work > Documents/letter.txt'
check writer-home-does-not-see-it 1 "" -- "$B" run writer-home -- cat Documents/letter.txt
check archive-reads-both 0 "at-work" -- "$B" run archive -- cat work/letter.txt
check archive-changes-neither 1 "Read-only" -- "$B" run archive -- touch work/other.txt

echo "data_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
