#!/bin/bash
# Figure "disposable": `bulkhead run --disposable untrusted -- true` end to end, with no preloaded
# disposable: the client connects to the broker, which makes disp-N (uid block, cgroup, namespaces,
# the sandbox's filesystem, Landlock, seccomp, the agent as PID 1), the agent runs `true` as user,
# reports its exit, the broker tears disp-N down and checks nothing is left, and only then the client
# exits with the command's code.
#
# peer: start.sh's bwrap sandbox running /bin/true (same filesystem and identity work, no broker,
# no cgroup, Landlock or seccomp).
#
# Prints one JSON line (see bench/lib.bash); run it alone or through bench/run.
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require hyperfine bwrap python3
[ "$(id -u)" -eq 0 ] || bench_fail "disposable: the broker needs root"
[ -x "$BULKHEAD" ] || bench_fail "disposable: $BULKHEAD not found: build it first (make build)"

# No preload: every run makes its disposable from scratch.
bench_broker_start '[system]
default_disposable = "untrusted"

[templates.host]
kind = "host"

[compartments.untrusted]
label = "red"
disposable_template = true
network = "none"
preload = 0'

bench_bwrap_peer
bench_bwrap+=(/bin/true)

# bench_compare runs in a subshell so that the EXIT trap (stopping the broker) still runs after it.
result=$(bench_compare disposable "disposable: run --disposable -- true, end to end (no preload)" \
    "$BULKHEAD run --root $BENCH_ROOT --disposable untrusted -- true" "bwrap --unshare-all" "${bench_bwrap[*]}")
left=$(bench_live_names)
[ -z "$left" ] || bench_fail "disposable: still running after the runs: $left"
printf '%s\n' "${result//"$BENCH_ROOT"/ROOT}" # the root's name changes from run to run
