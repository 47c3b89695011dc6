#!/usr/bin/env bash
# The .deb (make deb): what it holds and depends on, installed by dpkg into a fresh root; its
# systemd unit checked and its service command started as the unit would (with --root, beside this
# machine's own state); a compartment run with the installed binaries; man pages and completions.
# Usage: install_test.sh PATH/TO/bulkhead_VERSION_ARCH.deb
set -u
DEB=$(realpath "${1:?usage: install_test.sh PATH/TO/bulkhead.deb}")
ROOT=$(mktemp -d /tmp/bulkhead-install-test-XXXXXX)
LOG=$ROOT/daemon.log
DAEMON=
FRESH=$ROOT/fresh
export BULKHEAD_SOCKET=$ROOT/run/admin.sock
cleanup() {
    [[ -n $BULKHEAD ]] && stop_daemon
    rm -rf "$ROOT"
}
BULKHEAD=
trap cleanup EXIT
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"

info=$(dpkg-deb -I "$DEB")
[[ $info == *"Package: bulkhead"* && $info == *libmnl0* && $info == *libnftables1* && $info == *e2fsprogs* ]] \
    && pass "deb-declares-its-dependencies" || fail "deb-declares-its-dependencies: $info"

# dpkg itself, into a root of its own (its own database), as it installs into /.
mkdir -p "$FRESH/var/lib/dpkg/info" "$FRESH/var/lib/dpkg/updates"
touch "$FRESH/var/lib/dpkg/status"
check dpkg-installs-it 0 "" -- dpkg --instdir="$FRESH" --admindir="$FRESH/var/lib/dpkg" --force-depends --force-not-root -i "$DEB"
check dpkg-knows-it-installed 0 "install ok installed" -- dpkg-query --admindir="$FRESH/var/lib/dpkg" -W -f='${Status}' bulkhead
for file in usr/bin/bulkhead usr/lib/bulkhead/bulkhead-agent usr/lib/bulkhead/bulkhead-net usr/lib/systemd/system/bulkhead.service \
    usr/share/man/man1/bulkhead.1 usr/share/man/man1/bulkhead-call.1 usr/share/man/man5/system.toml.5 usr/share/man/man5/bulkhead-policy.5 \
    usr/share/bash-completion/completions/bulkhead usr/share/zsh/vendor-completions/_bulkhead; do
    [[ -e $FRESH/$file ]] && pass "installed-$file" || fail "installed-$file"
done
UNIT=$FRESH/usr/lib/systemd/system/bulkhead.service
grep -qx "ExecStart=/usr/bin/bulkhead daemon" "$UNIT" && grep -qx "Delegate=yes" "$UNIT" && grep -qx "KillMode=process" "$UNIT" \
    && pass "unit-starts-the-broker-with-its-cgroup-delegated" || fail "unit-starts-the-broker-with-its-cgroup-delegated: $(cat "$UNIT")"
if command -v systemd-analyze >/dev/null; then
    # systemd's own check of the unit, with its ExecStart pointing at the installed binary.
    mkdir -p "$ROOT/unit"
    sed "s|^ExecStart=/usr/bin/bulkhead|ExecStart=$FRESH/usr/bin/bulkhead|" "$UNIT" >"$ROOT/unit/bulkhead.service"
    check unit-verifies 0 "" -- systemd-analyze verify --man=no "$ROOT/unit/bulkhead.service"
fi
check man-page-renders 0 "bulkhead" -- man --warnings -l -Tutf8 "$FRESH/usr/share/man/man1/bulkhead.1"
check bash-completion-parses 0 "" -- bash -n "$FRESH/usr/share/bash-completion/completions/bulkhead"

# The unit's command, as systemd would start it, from the installed tree (here with --root, so that
# it is a system apart from anything else on this machine): it finds its helpers beside itself.
BULKHEAD=$FRESH/usr/bin/bulkhead
B=$BULKHEAD
exec_start=$(sed -n 's/^ExecStart=\/usr\/bin\/bulkhead daemon//p' "$UNIT") # start_daemon says `daemon --root`
# shellcheck disable=SC2086 # the unit's arguments, word-split as systemd does
start_daemon $exec_start
check installed-broker-runs-a-compartment 0 "uid=1000(user)" -- "$B" run vault -- id
check installed-broker-runs-a-networked-compartment 0 "connected" -- sh -c "'$B' run work -- true && '$B' ls"
check installed-help 0 "usage: bulkhead grant" -- "$B" grant --help

echo "install_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
