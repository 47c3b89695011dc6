#!/bin/bash
# Figure "call under flood": the latency of a call to an empty service (bulkhead-call from the
# compartment caller to the compartment callee, as in call.sh) while a third compartment, flooder,
# floods the broker with calls to the same service: 10,000 calls in BENCH_FLOOD_LOOPS (default 8)
# parallel loops, meant to run into its per-compartment throttle (a token bucket of 200 calls,
# refilled at 20 calls per second for each CPU, and at most 32 open caller connections). The target
# is that the other compartments' calls stay within 2x of their idle latency; this script only
# reports, it asserts nothing.
#
# peer: the same calls from caller with the broker idle (flooder running, but not calling).
#
# Both are timed inside caller (posix_spawn to waitpid, min(BENCH_RUNS, 200) calls after a few
# warm-up calls, by bench/call_flood.py); the flood phase starts timing once the broker has logged
# that it throttles flooder (its burst is spent: what is measured is the flood as it goes on), or,
# should that not come within 60 s, once the flood has made 300 calls (the notes say which). After
# the measurement the flood may go on for BENCH_FLOOD_WAIT more seconds (default 0), then flooder
# is stopped if it still runs; how many flood calls were made, how many succeeded and at what rate
# go into the notes. Prints one JSON line (see bench/lib.bash).
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# shellcheck source=bench/broker.bash
source "$bench_dir/broker.bash"

bench_require python3
[ "$(id -u)" -eq 0 ] || bench_fail "call_flood: the broker needs root"
[ -x "$BULKHEAD" ] || bench_fail "call_flood: $BULKHEAD not found: build it first (make build)"

runs=$((BENCH_RUNS < 200 ? BENCH_RUNS : 200))
warmup=$((BENCH_WARMUP < 10 ? BENCH_WARMUP : 10))
flood_calls=10000
flood_loops=${BENCH_FLOOD_LOOPS:-8}
flood_wait=${BENCH_FLOOD_WAIT:-0}
bench_empty_service
service=$bench_service

bench_broker_start '[templates.host]
kind = "host"

[compartments.flooder]
label = "red"

[compartments.caller]
label = "blue"

[compartments.callee]
label = "green"'
mkdir -p "$BENCH_ROOT/policy.d"
printf '%s * flooder callee allow\n%s * caller callee allow\n' "$service" "$service" >"$BENCH_ROOT/policy.d/bench.policy"
"$BULKHEAD" apply --root "$BENCH_ROOT" "$BENCH_ROOT/system.toml" >&2
for name in callee caller flooder; do
    "$BULKHEAD" start --root "$BENCH_ROOT" "$name" >&2
done

measure() { # measure OUTPUT: the caller's calls, timed inside caller
    "$BULKHEAD" run --root "$BENCH_ROOT" caller -- python3 -c "$(cat "$bench_dir/call_flood.py")" \
        measure "$runs" "$warmup" callee "$service" </dev/null >"$1"
}

echo "bench: call_flood: $runs calls from caller, idle" >&2
measure "$BENCH_ROOT/idle.json"

# The flood, inside flooder: one line per call on stdout ("o TIME" or "f EXIT_CODE TIME"; one short
# write each, so the parallel loops do not mix their lines), and its start and end ("t0", "t1").
# shellcheck disable=SC2016 # expanded by the bash inside flooder
flood='total=$1 loops=$2 target=$3 service=$4
echo "t0 $EPOCHREALTIME"
for ((l = 0; l < loops; l++)); do
    (
        for ((i = l; i < total; i += loops)); do
            if /run/bulkhead/bin/bulkhead-call "$target" "$service" </dev/null >/dev/null; then
                echo "o $EPOCHREALTIME"
            else
                echo "f $? $EPOCHREALTIME"
            fi
        done
    ) &
done
wait
echo "t1 $EPOCHREALTIME"'
flood_log=$BENCH_ROOT/flood.log
flood_err=$BENCH_ROOT/flood.err
echo "bench: call_flood: flooder starts $flood_calls calls in $flood_loops parallel loops" >&2
"$BULKHEAD" run --root "$BENCH_ROOT" flooder -- bash -c "$flood" flood "$flood_calls" "$flood_loops" callee "$service" \
    </dev/null >"$flood_log" 2>"$flood_err" &
flood_pid=$!
# Runs before the broker's clean-up, which then stops flooder and whatever still runs in it.
bench_extra_cleanup+=("kill $flood_pid")

flood_lines() {
    grep -c '^[of] ' "$flood_log" || true
}

# Measure only once the flood is throttled (its burst spent), as the broker's log says.
throttled=$BENCH_ROOT/throttled
deadline=$((SECONDS + 60))
while ! grep -m1 '^bulkhead daemon: flooder: calls throttled' "$BENCH_LOG" >"$throttled"; do
    kill -0 "$flood_pid" 2>/dev/null || bench_fail "call_flood: the flood ended after $(flood_lines) calls: $(head -c 2000 "$flood_err")"
    if [ $SECONDS -ge $deadline ]; then
        [ "$(flood_lines)" -ge 300 ] || bench_fail "call_flood: the flood made only $(flood_lines) calls in 60 s"
        echo "bench: call_flood: WARNING: the broker did not throttle flooder within 60 s" >&2
        break
    fi
    sleep 0.05
done

echo "bench: call_flood: $runs calls from caller during the flood ($(flood_lines) flood calls made so far)" >&2
measure "$BENCH_ROOT/flood.json"
kill -0 "$flood_pid" 2>/dev/null ||
    echo "bench: call_flood: WARNING: the flood ended before the measurement did: the figure is not all under flood" >&2

stopped=0
deadline=$((SECONDS + flood_wait))
while kill -0 "$flood_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.1
done
if kill -0 "$flood_pid" 2>/dev/null; then
    echo "bench: call_flood: measured, waited ${flood_wait} s more; the flood still runs ($(flood_lines) calls made): stopping flooder" >&2
    "$BULKHEAD" stop --root "$BENCH_ROOT" flooder >&2 || true
    stopped=1
fi
flood_status=0
wait "$flood_pid" || flood_status=$?
echo "bench: call_flood: the flood ended (bulkhead run exit status $flood_status, $(flood_lines) calls made)" >&2
if [ -s "$flood_err" ]; then
    echo "bench: call_flood: the flood's stderr ($(wc -l <"$flood_err") lines), first lines:" >&2
    head -n 5 "$flood_err" | sed "s/$service/bench.Empty/g" >&2
fi

result=$(python3 "$bench_dir/call_flood.py" report "call under flood: another compartment's call latency while one floods" \
    "$BENCH_ROOT/idle.json" "$BENCH_ROOT/flood.json" "$flood_log" "$flood_calls" "$flood_loops" "$stopped" "$throttled")
printf '%s\n' "${result//$service/bench.Empty}"
