#!/usr/bin/env bash
# The broker never follows a path a compartment controls (issue 13, item 4). A compartment that owns a
# volume folder replaces a folder below it, which another compartment's mount names, with a link to a
# host directory; as root, the broker used to create and chown a directory there on that compartment's
# next start. Each check is the attack and passes only when it fails: the start is refused with a
# message, nothing appears or changes on the host.
# Usage: state_paths_test.sh PATH/TO/bulkhead
set -u
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
broker_test_setup state-paths "${1:-}"
VICTIM=$(mktemp -d /tmp/bulkhead-victim-XXXXXX) # a host directory a link will point at
chmod 755 "$VICTIM"
test_cleanup_extra() {
    rm -rf "$VICTIM"
}

mkdir -p "$ROOT/etc"
cat >"$ROOT/etc/system.toml" <<'EOF'
[templates.host]
kind = "host"

[volumes.shared]

[compartments.owner]
label = "blue"
mounts = [ { volume = "shared", at = "Shared", mode = "rw" } ]

[compartments.reader]
label = "green"
mounts = [ { volume = "shared", path = "sub/inner", at = "Inner", mode = "rw" } ]

[compartments.leaf]
label = "purple"
mounts = [ { volume = "shared", path = "top", at = "Top", mode = "rw" } ]
EOF
start_daemon --config "$ROOT/etc/system.toml"
STATE=$ROOT/state

# The control: both start, and see the same folder (the owner opens its folder to others: a
# compartment may, and must, for anyone to walk through it).
check owner-starts 0 "" -- "$B" run owner -- chmod 755 /home/user/Shared
check reader-starts 0 "" -- "$B" run reader -- sh -c 'echo from-reader > ~/Inner/note'
ls "$STATE/volumes/shared/sub/inner/note" >/dev/null 2>&1 && pass "readers-folder-in-the-volume" || fail "readers-folder-in-the-volume"
"$B" stop reader >/dev/null

# ---- a link in place of a folder above the mount: the broker would walk through it ----
"$B" run owner -- sh -c "mv ~/Shared/sub ~/Shared/sub.moved && ln -s $VICTIM ~/Shared/sub"
check reader-refused-through-a-link 125 "is a symbolic link" -- "$B" run reader -- true
[[ ! -e $VICTIM/inner ]] && pass "nothing-made-through-the-link" || fail "nothing-made-through-the-link: $(ls -la "$VICTIM")"
[[ $(stat -c %u "$VICTIM") == 0 ]] && pass "link-target-owner-unchanged" || fail "link-target-owner-unchanged: $(stat -c %u "$VICTIM")"

# ---- the same at the mount itself: the link is bound (as its target) no more ----
"$B" run owner -- sh -c "ln -s $VICTIM ~/Shared/top"
check leaf-refused-at-a-link 125 "is a symbolic link" -- "$B" run leaf -- true
[[ $(stat -c %u "$VICTIM") == 0 && -z $(ls -A "$VICTIM") ]] && pass "link-target-untouched" || fail "link-target-untouched"

# ---- a link to /etc: as the issue reproduced it ----
"$B" stop reader >/dev/null 2>&1
"$B" run owner -- sh -c "rm ~/Shared/sub && ln -s /etc ~/Shared/sub"
etc_before=$(stat -c '%u %a' /etc)
check reader-refused-through-a-link-to-etc 125 "is a symbolic link" -- "$B" run reader -- true
[[ ! -e /etc/inner && $(stat -c '%u %a' /etc) == "$etc_before" ]] && pass "etc-untouched" || fail "etc-untouched"

# ---- put back: the reader starts again and finds its note ----
"$B" run owner -- sh -c "rm ~/Shared/sub && mv ~/Shared/sub.moved ~/Shared/sub"
check reader-starts-again 0 "from-reader" -- "$B" run reader -- cat /home/user/Inner/note

echo "state_paths_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
