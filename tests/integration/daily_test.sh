#!/usr/bin/env bash
# Daily use (issue 19): --help everywhere, stop that is idempotent (and --all), pools that follow the
# configuration in force, policy check's exit codes, a login shell's PATH, a non-root client told
# why, generations and config show.
# Usage: daily_test.sh PATH/TO/bulkhead
set -u
# shellcheck source=tests/integration/lib.bash
source "$(dirname "$0")/lib.bash"
broker_test_setup daily "${1:-}"

# ---- --help on every host command, without a broker ----
for command in daemon apply plan rollback generations config ls net start stop restart policy pending approve deny audit \
    copy grant revoke show demo version run shell sandbox; do
    out=$("$B" "$command" --help 2>&1)
    code=$?
    [[ $code -eq 0 && $out == *"usage: bulkhead "* ]] && pass "help-$command" || fail "help-$command: exit $code: $out"
done
check help-is-not-taken-after-dashdash 125 "" -- "$B" run --socket "$ROOT/nothing.sock" work -- ls --help

mkdir -p "$ROOT/etc/policy.d"
write_config() { # MEMORY PRELOAD
    cat >"$ROOT/etc/system.toml" <<EOF2
[templates.host]
kind = "host"

[compartments.work]
label = "blue"

[compartments.vault]
label = "black"

[compartments.scratch]
label = "red"
disposable_template = true
memory = "$1"
preload = $2
EOF2
}
write_config 256M 1
cat >"$ROOT/etc/policy.d/10-daily.policy" <<'EOF2'
x.Allow  *  work  vault  allow
x.Ask    *  work  vault  ask
x.Home   *  vault work   allow
x.Home   *  work  vault  allow
x.Root   *  vault work   allow  user=root
bulkhead.Filecopy  *  work  vault  ask
EOF2
start_daemon --config "$ROOT/etc/system.toml"

# ---- inside: --help of every command ----
for command in bulkhead-call bulkhead-copy bulkhead-move bulkhead-clip bulkhead-open-disposable; do
    check "help-inside-$command" 0 "usage: $command" -- "$B" run work -- "$command" --help
done

# ---- a login shell keeps the in-compartment commands ----
check login-shell-path 0 "/run/bulkhead/bin/bulkhead-call" -- "$B" run work -- bash -l -c 'command -v bulkhead-call'

# `bulkhead shell NAME` itself, through a pty: the login shell finds the in-compartment commands.
shell_out=$(python3 - "$B" <<'EOF'
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "shell", "work"])
out = b""
def until(token, seconds=20):
    global out
    end = time.time() + seconds
    while token not in out and time.time() < end:
        if select.select([fd], [], [], 0.2)[0]:
            try: out += os.read(fd, 4096)
            except OSError: break
time.sleep(1)
os.write(fd, b"echo FOUND-$(command -v bulkhead-call)-END; exit\n")
until(b"-END\r\n")
os.waitpid(pid, 0)
print(out.decode(errors="replace"))
EOF
)
[[ $shell_out == *"FOUND-/run/bulkhead/bin/bulkhead-call-END"* ]] && pass "shell-pty-path-has-the-commands" || fail "shell-pty-path-has-the-commands: $shell_out"

# ---- a compartment's own services, in its home ----
check own-service-installed 0 "" -- "$B" run work -- sh -c 'mkdir -p ~/.config/bulkhead/services && printf "#!/bin/sh\necho from-\$BULKHEAD_SOURCE-in-\$BULKHEAD_COMPARTMENT\n" > ~/.config/bulkhead/services/x.Home && chmod +x ~/.config/bulkhead/services/x.Home'
check own-service-called 0 "from-vault-in-work" -- "$B" run vault -- bulkhead-call work x.Home
# A service the user wrote never runs as root: a user=root call looks in root's home, not the user's.
check user-service-planted-for-root 0 "" -- "$B" run work -- sh -c 'printf "#!/bin/sh\nid -u\n" > ~/.config/bulkhead/services/x.Root && chmod +x ~/.config/bulkhead/services/x.Root'
check user-service-never-runs-as-root 127 "no service x.Root in work" -- "$B" run vault -- bulkhead-call work x.Root
# vault has no such service of its own: the call is allowed and finds nothing to run.
check own-service-absent-elsewhere 127 "no service x.Home in vault" -- "$B" run work -- bulkhead-call vault x.Home

# ---- a copy that would be refused is refused before anyone is asked ----
check copy-of-a-link-refused-at-once 125 "nothing was sent" -- "$B" run work -- sh -c 'ln -sf /etc/passwd link && exec bulkhead-copy vault link'
[[ $("$B" pending --json) == "[]" ]] && pass "nobody-asked-about-a-refused-copy" || fail "nobody-asked-about-a-refused-copy: $("$B" pending)"

# ---- stop: idempotent, several names, --all ----
check stop-not-running-is-a-no-op 0 "" -- "$B" stop vault
check stop-unknown-is-an-error 2 "no compartment named" -- "$B" stop nosuch
check start-work 0 "" -- "$B" start work
check start-running-is-a-no-op 0 "" -- "$B" start work
check start-vault 0 "" -- "$B" start vault
check stop-several 0 "" -- "$B" stop work vault
[[ $(json_field work state) == stopped && $(json_field vault state) == stopped ]] && pass "stop-several-stopped-both" || fail "stop-several-stopped-both"

# ---- pools follow the configuration in force ----
pooled() { "$B" ls --json | python3 -c 'import json,sys; print(" ".join(c["name"]+":"+str(c.get("memory_limit")) for c in json.load(sys.stdin)["compartments"] if c.get("preloaded")))'; }
wait_pooled() { # PREDICATE-SUBSTRING: waits up to 10 s for the pool to match
    for _ in $(seq 100); do [[ $(pooled) == *"$1"* ]] && return 0; sleep 0.1; done
    return 1
}
wait_pooled ":$((256 << 20))" && pass "pool-filled" || fail "pool-filled: $(pooled)"
write_config 128M 1
check apply-smaller-template 0 "pooled disposable(s) of changed templates stopped" -- "$B" apply "$ROOT/etc/system.toml"
wait_pooled ":$((128 << 20))" && [[ $(pooled) != *":$((256 << 20))"* ]] && pass "pool-refilled-with-new-settings" || fail "pool-refilled-with-new-settings: $(pooled)"
write_config 128M 0
check apply-no-preload 0 "" -- "$B" apply "$ROOT/etc/system.toml"
[[ -z $(pooled) ]] && pass "preload-zero-empties-the-pool" || fail "preload-zero-empties-the-pool: $(pooled)"
write_config 128M 1
check apply-preload-again 0 "" -- "$B" apply "$ROOT/etc/system.toml"
wait_pooled "disp-" && pass "pool-back" || fail "pool-back: $(pooled)"
check start-work-again 0 "" -- "$B" start work
check stop-all 0 "" -- "$B" stop --all
sleep 1
running=$("$B" ls --json | python3 -c 'import json,sys; print(" ".join(c["name"] for c in json.load(sys.stdin)["compartments"] if c["state"] != "stopped"))')
[[ -z $running ]] && pass "stop-all-stops-everything-and-the-pool-stays-empty" || fail "stop-all-stops-everything-and-the-pool-stays-empty: $running"
check disposable-after-stop-all 0 "hi" -- "$B" run --disposable scratch -- echo hi
wait_pooled "disp-" && pass "pool-refills-once-used-again" || fail "pool-refills-once-used-again: $(pooled)"

# ---- policy check: 0 allow, 1 deny, 3 ask ----
check policy-check-allow-exit-0 0 "allow" -- "$B" policy check work vault x.Allow
check policy-check-deny-exit-1 1 "deny" -- "$B" policy check vault work x.Allow
check policy-check-ask-exit-3 3 "ask" -- "$B" policy check work vault x.Ask
echo 'x.Allow  *  work  vault  deny' >"$ROOT/etc/policy.d/05-edit.policy"
check policy-check-says-files-differ 0 "differ from the policy in force" -- "$B" policy check work vault x.Allow
rm "$ROOT/etc/policy.d/05-edit.policy"

# ---- generations, config show ----
out=$("$B" generations)
[[ $(grep -c . <<<"$out") -ge 4 && $out == *"*"*system.toml* ]] && pass "generations-listed" || fail "generations-listed: $out"
check config-show 0 'memory = "128M"' -- "$B" config show
check config-show-fills-defaults 0 "pids = 4096   # default" -- "$B" config show
"$B" config show >"$ROOT/shown.toml"
check config-show-is-a-valid-configuration 0 "" -- "$B" plan "$ROOT/shown.toml"

# ---- a client without root is told why ----
check non-root-told-the-socket-is-roots 125 "is root's only" -- setpriv --reuid 65534 --regid 65534 --clear-groups "$B" ls

echo "daily_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
