#!/usr/bin/env bash
# Limits by default (issue 13, item 5; DESIGN.md "Limits by default"): with no `memory` a compartment
# gets half the host's RAM, with no `pids` 4096 tasks (RLIMIT_NPROC too), "none" lifts them, and a
# limit that bites is named: `run` says "out of memory (limit 64M)" or "task limit (16) reached", and
# ls --json counts it. A persistent home is an ext4 image of `disk` (default 10G): full is ENOSPC
# inside and the host holds no more than that; "none" keeps a plain directory; a home from before
# images is copied in once (the directory kept); a larger disk grows the image.
# Usage: limits_test.sh PATH/TO/bulkhead
set -u
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
broker_test_setup limits "${1:-}"

mkdir -p "$ROOT/etc"
cat >"$ROOT/etc/system.toml" <<'EOF'
[templates.host]
kind = "host"

[compartments.plain]
label = "blue"

[compartments.lifted]
label = "green"
memory = "none"
pids = "none"

[compartments.small]
label = "red"
memory = "64M"
pids = 16

[compartments.tiny]
label = "yellow"
disk = "32M"

[compartments.plaindir]
label = "gray"
disk = "none"

[compartments.legacy]
label = "purple"
disk = "64M"
EOF
# A home from before images: a plain directory, to be copied into legacy's first image.
mkdir -p "$ROOT/state/compartments/legacy/home"
echo "written before images" >"$ROOT/state/compartments/legacy/home/old-note"
chmod 644 "$ROOT/state/compartments/legacy/home/old-note"
start_daemon --config "$ROOT/etc/system.toml"
half=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024 / 2 ))

check plain-starts 0 "" -- "$B" start plain
[[ $(json_field plain memory_limit) == "$half" ]] && pass "default-memory-is-half-the-ram ($half)" || fail "default-memory-is-half-the-ram: $(json_field plain memory_limit), wanted $half"
[[ $(json_field plain pids_limit) == 4096 ]] && pass "default-pids-4096" || fail "default-pids-4096: $(json_field plain pids_limit)"
check default-rlimit-nproc-inside 0 "4096" -- "$B" run plain -- bash -c 'ulimit -u'
[[ $(json_field lifted memory_limit) == 0 && $(json_field lifted pids_limit) == 0 ]] && pass "none-lifts-both" \
    || fail "none-lifts-both: $(json_field lifted memory_limit) $(json_field lifted pids_limit)"
check plan-says-the-default 0 "" -- "$B" plan "$ROOT/etc/system.toml"

# ---- memory: the allocation is killed, and run says by what ----
out=$("$B" run small -- python3 -c 'b = bytearray(256 << 20); print("allocated")' 2>&1)
code=$?
[[ $code == 137 && $out == *"small: out of memory (limit 64M)"* && $out != *allocated* ]] \
    && pass "oom-named-by-run" || fail "oom-named-by-run: exit $code; $out"
kills=$(json_field small oom_kills)
[[ $kills =~ ^[0-9]+$ && $kills -ge 1 ]] && pass "ls-counts-oom-kills ($kills)" || fail "ls-counts-oom-kills: $kills"
check compartment-survives-its-oom 0 "still here" -- "$B" run small -- echo still here

# ---- tasks: forks past the limit are refused, and run says so ----
out=$("$B" run small -- sh -c 'for i in $(seq 40); do sleep 5 & done 2>/dev/null; wait' 2>&1)
[[ $out == *"small: task limit (16) reached"* ]] && pass "task-limit-named-by-run" || fail "task-limit-named-by-run: $out"
refused=$(json_field small pids_refused)
[[ $refused =~ ^[0-9]+$ && $refused -ge 1 ]] && pass "ls-counts-refused-forks ($refused)" || fail "ls-counts-refused-forks: $refused"

# ---- a run where no limit bites says nothing of limits ----
out=$("$B" run small -- echo fine 2>&1)
[[ $out == fine ]] && pass "quiet-when-no-limit-bites" || fail "quiet-when-no-limit-bites: $out"

# ---- disk: a persistent home is an image of `disk`; full is ENOSPC inside, nothing outside ----
free_before=$(df -k --output=avail "$ROOT" | tail -1)
out=$("$B" run tiny -- sh -c 'dd if=/dev/zero of=$HOME/fill bs=1M count=64 2>&1; echo "dd exit $?"; sync' 2>&1)
[[ $out == *"No space left on device"* && $out == *"dd exit 1"* ]] && pass "full-home-is-enospc-inside" || fail "full-home-is-enospc-inside: $out"
allocated=$(( $(stat -c %b "$ROOT/state/compartments/tiny/home.img") * $(stat -c %B "$ROOT/state/compartments/tiny/home.img") ))
(( allocated <= 40 * 1024 * 1024 )) && pass "image-holds-at-most-its-disk ($allocated bytes)" || fail "image-holds-at-most-its-disk: $allocated bytes"
free_after=$(df -k --output=avail "$ROOT" | tail -1)
(( free_before - free_after < 48 * 1024 )) && pass "host-lost-no-more-than-the-disk ($((free_before - free_after)) KiB)" \
    || fail "host-lost-no-more-than-the-disk: $((free_before - free_after)) KiB"
check compartment-works-with-a-full-home 0 "ok" -- "$B" run tiny -- sh -c 'rm ~/fill && echo ok'
[[ $(json_field tiny memory_limit) =~ ^[0-9]+$ ]] && pass "ls-after-full-home" || fail "ls-after-full-home"
check disk-none-is-a-plain-directory 0 "" -- "$B" run plaindir -- sh -c 'echo x > ~/f'
[[ -f $ROOT/state/compartments/plaindir/home/f && ! -e $ROOT/state/compartments/plaindir/home.img ]] \
    && pass "disk-none-home-in-STATE" || fail "disk-none-home-in-STATE"
check legacy-home-copied-into-its-image 0 "written before images" -- "$B" run legacy -- cat /home/user/old-note
[[ -f $ROOT/state/compartments/legacy/home.before-image/old-note && -f $ROOT/state/compartments/legacy/home.img ]] \
    && pass "legacy-directory-kept-beside" || fail "legacy-directory-kept-beside"
"$B" run legacy -- sh -c 'echo after > ~/new-note' >/dev/null
"$B" stop legacy >/dev/null
sed -i 's/^disk = "64M"$/disk = "128M"/' "$ROOT/etc/system.toml"
check apply-larger-disk 0 "" -- "$B" apply "$ROOT/etc/system.toml"
check grown-image-keeps-the-files 0 "after" -- "$B" run legacy -- cat /home/user/new-note
[[ $(stat -c %s "$ROOT/state/compartments/legacy/home.img") == $((128 << 20)) ]] && pass "image-grown-to-the-new-disk" \
    || fail "image-grown-to-the-new-disk: $(stat -c %s "$ROOT/state/compartments/legacy/home.img")"
check grown-filesystem-size 0 "" -- "$B" run legacy -- sh -c '[ $(df -k --output=size ~ | tail -1) -gt 100000 ]'
"$B" stop tiny >/dev/null
[[ -z $(grep " $ROOT/run/homes/tiny " /proc/mounts) ]] && pass "home-unmounted-at-stop" || fail "home-unmounted-at-stop"

echo "limits_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
