#!/bin/bash
# Figure "start": create a compartment, run /bin/true in it, tear it down.
#
# bulkhead: `bulkhead sandbox --name bench -- /bin/true` (the engine directly, no broker): seven
# namespaces, its own uid block, a tmpfs root with the host /usr read-only, generated /etc, minimal
# /dev, masked /proc, cgroup, capabilities dropped, no_new_privs, Landlock and the seccomp allowlist;
# /bin/true runs as uid 1000 inside; then every mount, cgroup and scratch directory is removed.
#
# peer: bubblewrap doing the same filesystem and identity work: every namespace, uid/gid 1000 inside,
# the host /usr read-only with the merged-/usr links, the same /etc entries bound read-only,
# /proc, /dev, tmpfs /tmp, /run and home, a new session, all capabilities dropped, and a clean
# environment. bwrap applies no cgroup, Landlock or seccomp rules here: the ratio includes their cost.
#
# Prints one JSON line (see bench/lib.bash); run it alone or through bench/run.
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

bench_require hyperfine bwrap python3
[ "$(id -u)" -eq 0 ] || bench_fail "start: bulkhead sandbox needs root (cgroups, uid ranges)"
[ -x "$BULKHEAD" ] || bench_fail "start: $BULKHEAD not found: build it first (make build)"

ours="$BULKHEAD sandbox --name bench -- /bin/true"

peer=(bwrap --unshare-all --unshare-user --uid 1000 --gid 1000 --hostname bench --die-with-parent --new-session
    --cap-drop ALL --ro-bind /usr /usr)
# The host's top-level system directories: links into /usr on merged-/usr systems, directories otherwise.
for entry in bin sbin lib lib32 lib64 libx32; do
    if [ -L "/$entry" ]; then
        peer+=(--symlink "$(readlink "/$entry")" "/$entry")
    elif [ -d "/$entry" ]; then
        peer+=(--ro-bind "/$entry" "/$entry")
    fi
done
peer+=(--proc /proc --dev /dev --tmpfs /tmp --tmpfs /run --tmpfs /home/user)
# The /etc entries bulkhead passes through from the host (etc_passthrough in src/sandbox/mounts.cpp),
# plus host copies of the files bulkhead generates (passwd, group, hosts, nsswitch.conf, resolv.conf).
for entry in ld.so.cache ld.so.conf ld.so.conf.d alternatives ssl/certs ssl/openssl.cnf ca-certificates \
    ca-certificates.conf localtime timezone protocols services mime.types debian_version os-release \
    locale.alias bash.bashrc profile inputrc terminfo magic gai.conf python3 \
    passwd group hosts nsswitch.conf resolv.conf; do
    if [ -e "/etc/$entry" ]; then
        peer+=(--ro-bind "/etc/$entry" "/etc/$entry")
    fi
done
peer+=(--chdir /home/user --clearenv --setenv HOME /home/user --setenv USER user
    --setenv PATH /usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin --setenv LANG C.UTF-8
    /bin/true)

bench_compare start "start: create a compartment, run /bin/true, tear it down" \
    "$ours" "bwrap --unshare-all" "${peer[*]}"
