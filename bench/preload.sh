#!/bin/bash
# Figure "preload": with `preload = 2` on the disposable template, the time from a request
# (`bulkhead run --disposable untrusted -- echo x` is spawned) until the first byte of the
# command's output arrives on the client's stdout. The broker hands the request a ready
# disposable, so only the command's own start remains. Before each request the pool is full
# again (ls --json shows 2 preloaded, running disposables).
#
# peer: the same first-byte time for start.sh's bwrap sandbox running `echo x`, alternating with
# bulkhead in the same run (bench/first_byte.py). Not hyperfine: hyperfine times whole runs, and a
# disposable's run ends only after its teardown. For reference, the notes also give the first byte
# of `run warm -- echo x` in a running persistent compartment: what a ready disposable should cost.
#
# Runs: min(BENCH_RUNS, 100) rounds after min(BENCH_WARMUP, 10) warm-up rounds.
# Prints one JSON line (see bench/lib.bash); run it alone or through bench/run.
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require bwrap python3
[ "$(id -u)" -eq 0 ] || bench_fail "preload: the broker needs root"
[ -x "$BULKHEAD" ] || bench_fail "preload: $BULKHEAD not found: build it first (make build)"

pool=2
runs=$((BENCH_RUNS < 100 ? BENCH_RUNS : 100))
warmup=$((BENCH_WARMUP < 10 ? BENCH_WARMUP : 10))

bench_broker_start "[system]
default_disposable = \"untrusted\"

[templates.host]
kind = \"host\"

[compartments.untrusted]
label = \"red\"
disposable_template = true
network = \"none\"
preload = $pool

[compartments.warm]
label = \"gray\"
network = \"none\""
"$BULKHEAD" start --root "$BENCH_ROOT" warm >&2

bench_bwrap_peer
result=$(python3 "$bench_dir/first_byte.py" "preload: first byte of run --disposable -- echo x (pool of $pool)" \
    "$runs" "$warmup" "$pool" "$BULKHEAD" "$BENCH_ROOT" untrusted warm -- "${bench_bwrap[@]}")
printf '%s\n' "${result//"$BENCH_ROOT"/ROOT}" # the root's name changes from run to run
