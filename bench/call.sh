#!/bin/bash
# Figure "call": latency of a call to an empty service, from inside one compartment to another
# (bulkhead-call: connect to the broker, policy decision, audit record, the target's agent starts
# the service with one end of a socketpair, the caller gets the other end, the service's exit
# status comes back), p50 and p99.
#
# peer: the same empty service spawned locally in the calling compartment (no crossing).
#
# Prints one JSON line (see bench/lib.bash); run it alone or through bench/run.
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require python3
[ "$(id -u)" -eq 0 ] || bench_fail "call: the broker needs root"
[ -x "$BULKHEAD" ] || bench_fail "call: $BULKHEAD not found: build it first (make build)"

runs=$((BENCH_RUNS < 200 ? BENCH_RUNS : 200))
warmup=$((BENCH_WARMUP < 10 ? BENCH_WARMUP : 10))
bench_empty_service
service=$bench_service

bench_broker_start '[templates.host]
kind = "host"

[compartments.caller]
label = "blue"

[compartments.callee]
label = "green"'
mkdir -p "$BENCH_ROOT/policy.d"
printf '%s * caller callee allow\n' "$service" >"$BENCH_ROOT/policy.d/bench.policy"
"$BULKHEAD" apply --root "$BENCH_ROOT" "$BENCH_ROOT/system.toml" >&2
"$BULKHEAD" start --root "$BENCH_ROOT" callee >&2
result=$("$BULKHEAD" run --root "$BENCH_ROOT" caller -- python3 -c "$(cat "$bench_dir/call_latency.py")" \
    "call: bulkhead-call to an empty service in another compartment" "$runs" "$warmup" callee "$service" \
    "/usr/lib/bulkhead/services/$service")
printf '%s\n' "${result//$service/bench.Empty}"
