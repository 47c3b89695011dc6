# Shared by the benchmarks that drive a real broker (disposable.sh, preload.sh, idle_memory.sh,
# density.sh); sourced after lib.bash, not run. See bench/README.md.
#
#   bench_broker_start CONFIG_TEXT   writes BENCH_ROOT/system.toml, starts `bulkhead daemon` on a fresh
#                                    mktemp -d root and waits until it answers; sets BENCH_ROOT,
#                                    BENCH_DAEMON (its pid), BENCH_LOG (its log) and installs the
#                                    EXIT trap that stops everything again (bench_broker_cleanup)
#   bench_ls_json                    `bulkhead ls --json` of that broker
#   bench_empty_service              installs an empty service (`exit 0`) for the calls benchmarks,
#                                    named in bench_service, removed again by the clean-up
#   bench_bwrap_peer                 fills the array bench_bwrap with start.sh's bwrap command line,
#                                    without the command (append the command yourself)

BENCH_ROOT=
BENCH_DAEMON=
BENCH_LOG=
bench_extra_cleanup=() # commands the scripts add (e.g. killing their peer's sandboxes); run first

bench_ls_json() {
    "$BULKHEAD" ls --root "$BENCH_ROOT" --json
}

# The names of the compartments that are not stopped, one a line.
bench_live_names() {
    bench_ls_json 2>/dev/null | python3 -c '
import json, sys
for c in json.load(sys.stdin)["compartments"]:
    if c["state"] != "stopped":
        print(c["name"])' 2>/dev/null
}

bench_daemon_up() {
    local _
    for _ in $(seq 200); do
        "$BULKHEAD" ls --root "$BENCH_ROOT" >/dev/null 2>&1 && return 0
        kill -0 "$BENCH_DAEMON" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench: the daemon did not come up; its log:" >&2
    cat "$BENCH_LOG" >&2
    return 1
}

bench_broker_start() {
    local config=$1
    BENCH_ROOT=$(mktemp -d /tmp/bulkhead-bench-XXXXXX)
    BENCH_LOG=$BENCH_ROOT/daemon.log
    trap bench_broker_cleanup EXIT
    trap 'exit 130' INT TERM
    printf '%s\n' "$config" > "$BENCH_ROOT/system.toml"
    # In a session of its own, so that a Ctrl-C of the script leaves it alive for the clean-up.
    setsid "$BULKHEAD" daemon --root "$BENCH_ROOT" --config "$BENCH_ROOT/system.toml" >>"$BENCH_LOG" 2>&1 &
    BENCH_DAEMON=$!
    bench_daemon_up
}

# Stops every compartment through the broker, then the broker (SIGTERM, wait), checks that nothing
# is left (runtime directories, cgroups) and removes the root. If the broker died first, a new one
# on the same root adopts the compartments it left running, and they are stopped through it.
bench_broker_cleanup() {
    local status=$? command attempt names leftovers cgroup
    set +e
    trap - EXIT INT TERM
    for command in "${bench_extra_cleanup[@]}"; do
        eval "$command" >/dev/null 2>&1
    done
    [ -n "$BENCH_ROOT" ] || exit $status
    for attempt in 1 2; do
        if [ -n "$BENCH_DAEMON" ] && kill -0 "$BENCH_DAEMON" 2>/dev/null; then
            # An idle broker refills its disposable pools: empty them for good first.
            if grep -q '^preload *= *[1-9]' "$BENCH_ROOT/system.toml"; then
                sed 's/^preload *= *[0-9]*/preload = 0/' "$BENCH_ROOT/system.toml" > "$BENCH_ROOT/no-preload.toml"
                "$BULKHEAD" apply --root "$BENCH_ROOT" "$BENCH_ROOT/no-preload.toml" >/dev/null 2>&1 ||
                    echo "bench: could not switch preloading off; stopping anyway" >&2
            fi
            names=$(bench_live_names)
            if [ -n "$names" ]; then
                printf '%s\n' $names | xargs -r -n 1 -P 4 "$BULKHEAD" stop --root "$BENCH_ROOT" >/dev/null 2>&1
            fi
            kill -TERM "$BENCH_DAEMON" 2>/dev/null
            wait "$BENCH_DAEMON" 2>/dev/null
        fi
        BENCH_DAEMON=
        leftovers=$(find "$BENCH_ROOT/run/compartments" -mindepth 1 -maxdepth 1 2>/dev/null)
        [ -z "$leftovers" ] && break
        if [ $attempt -eq 1 ]; then
            echo "bench: compartments left running under $BENCH_ROOT; a new broker adopts and stops them" >&2
            setsid "$BULKHEAD" daemon --root "$BENCH_ROOT" >>"$BENCH_LOG" 2>&1 &
            BENCH_DAEMON=$!
            bench_daemon_up || { kill -TERM "$BENCH_DAEMON"; wait "$BENCH_DAEMON"; BENCH_DAEMON=; break; }
        fi
    done
    if [ -n "$leftovers" ]; then
        echo "bench: LEFT BEHIND under $BENCH_ROOT/run/compartments (root kept for inspection):" >&2
        printf '%s\n' "$leftovers" >&2
        exit 1
    fi
    # The broker removes its cgroup directories when it exits with nothing running.
    for cgroup in $(sed -n 's/^bulkhead daemon: cgroups under //p' "$BENCH_LOG" | sort -u); do
        if [ -e "$cgroup" ]; then
            echo "bench: cgroup $cgroup left behind" >&2
            status=1
        fi
    done
    if findmnt -rn -o TARGET | grep -q "^$BENCH_ROOT"; then
        echo "bench: mounts left under $BENCH_ROOT (root kept for inspection)" >&2
        exit 1
    fi
    rm -rf --one-file-system "$BENCH_ROOT"
    exit $status
}

bench_empty_service() {
    # The target finds services under /usr/lib/bulkhead/services (the host template shares /usr).
    bench_service=bulkhead-bench-$$.Empty
    mkdir -p /usr/lib/bulkhead/services
    printf '#!/bin/sh\nexit 0\n' >"/usr/lib/bulkhead/services/$bench_service"
    chmod 755 "/usr/lib/bulkhead/services/$bench_service"
    bench_extra_cleanup+=("rm -f /usr/lib/bulkhead/services/$bench_service; rmdir /usr/lib/bulkhead/services /usr/lib/bulkhead")
}

bench_bwrap_peer() {
    # The same command line as start.sh's peer (keep the two in step).
    bench_bwrap=(bwrap --unshare-all --unshare-user --uid 1000 --gid 1000 --hostname bench --die-with-parent --new-session
        --cap-drop ALL --ro-bind /usr /usr)
    local entry
    for entry in bin sbin lib lib32 lib64 libx32; do
        if [ -L "/$entry" ]; then
            bench_bwrap+=(--symlink "$(readlink "/$entry")" "/$entry")
        elif [ -d "/$entry" ]; then
            bench_bwrap+=(--ro-bind "/$entry" "/$entry")
        fi
    done
    bench_bwrap+=(--proc /proc --dev /dev --tmpfs /tmp --tmpfs /run --tmpfs /home/user)
    for entry in ld.so.cache ld.so.conf ld.so.conf.d alternatives ssl/certs ssl/openssl.cnf ca-certificates \
        ca-certificates.conf localtime timezone protocols services mime.types debian_version os-release \
        locale.alias bash.bashrc profile inputrc terminfo magic gai.conf python3 \
        passwd group hosts nsswitch.conf resolv.conf; do
        if [ -e "/etc/$entry" ]; then
            bench_bwrap+=(--ro-bind "/etc/$entry" "/etc/$entry")
        fi
    done
    bench_bwrap+=(--chdir /home/user --clearenv --setenv HOME /home/user --setenv USER user
        --setenv PATH /usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin --setenv LANG C.UTF-8)
}
