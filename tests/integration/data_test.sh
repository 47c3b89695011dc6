#!/usr/bin/env bash
# Central user data (issue 15): volumes owned by no compartment and shown to each as its own user
# through idmapped mounts; live grants and revokes; files between the host and compartments. Attacks
# from inside: root inside writing through a read-only volume or grant, links planted in a shared
# volume, a rename race while a grant is made, a planted link copied out to the host.
# Usage: data_test.sh PATH/TO/bulkhead
set -u
BULKHEAD=$(realpath "${1:?usage: data_test.sh PATH/TO/bulkhead}")
ROOT=$(mktemp -d /tmp/bulkhead-data-test-XXXXXX)
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

echo "data_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
