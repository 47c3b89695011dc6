#!/bin/bash
# Runs libFuzzer targets for SECONDS each, from a copy of their seed corpus.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# BUILD_DIR is a build configured with -DBULKHEAD_FUZZ=ON (`make fuzz-build` makes build-fuzz/); the
# targets are the ones it lists in BUILD_DIR/fuzz_targets.txt, or only the TARGETs named. Seeds are
# copied from tests/fuzz/corpus/TARGET/ to BUILD_DIR/corpus/TARGET/, which keeps what the fuzzer finds
# from run to run; the source tree is never written. A crash, sanitizer report, broken invariant, leak,
# timeout or out-of-memory leaves its reproducer in BUILD_DIR/crashes/, is printed with the command
# that replays it, and makes the script exit 1 once every target has had its turn.
set -euo pipefail

usage() {
    echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
build=${1%/}
seconds=$2
shift 2
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: SECONDS must be a positive whole number, not '$seconds'" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list=$build/fuzz_targets.txt
if [ ! -f "$list" ]; then
    echo "fuzz: $list not found: configure $build with -DBULKHEAD_FUZZ=ON and build it (make fuzz-build)" >&2
    exit 1
fi

# Undefined behaviour is a finding, not a warning: stop at the first report so libFuzzer saves the input.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# Symbolized stack traces in reports, from the versioned llvm package when no llvm-symbolizer is on PATH.
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && ! command -v llvm-symbolizer >/dev/null; then
    for candidate in /usr/lib/llvm-*/bin/llvm-symbolizer; do
        if [ -x "$candidate" ]; then
            export ASAN_SYMBOLIZER_PATH=$candidate
        fi
    done
fi

declare -A binaries=()
order=()
while read -r name binary; do
    [ -n "$name" ] || continue
    binaries[$name]=$binary
    order+=("$name")
done < "$list"
[ $# -eq 0 ] || order=("$@")

crashes=$build/crashes
logs=$build/logs
mkdir -p "$crashes" "$logs"
failed=()

for name in "${order[@]}"; do
    binary=${binaries[$name]:-}
    if [ -z "$binary" ]; then
        echo "fuzz: $name: no such target in $list" >&2
        failed+=("$name")
        continue
    fi
    if [ ! -x "$binary" ]; then
        echo "fuzz: $name: $binary was not built" >&2
        failed+=("$name")
        continue
    fi

    corpus=$build/corpus/$name
    mkdir -p "$corpus"
    seeds=$here/corpus/$name
    if [ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ]; then
        cp -n -- "$seeds"/* "$corpus"/
    else
        echo "fuzz: $name: warning: no seed corpus in tests/fuzz/corpus/$name/" >&2
    fi
    options=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/$name-")
    if [ -f "$here/$name.dict" ]; then
        options+=(-dict="$here/$name.dict")
    fi

    log=$logs/$name.log
    inputs_before=$(find "$corpus" -maxdepth 1 -type f | wc -l)
    echo "fuzz: $name for ${seconds}s (log: $log)"
    started=$(date +%s)
    status=0
    "$binary" "${options[@]}" "$corpus" > "$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - started))

    if [ $status -ne 0 ]; then
        failed+=("$name")
        echo "fuzz: $name FAILED (exit $status after ${elapsed}s)" >&2
        grep -aE 'invariant broken|ERROR: |runtime error|SUMMARY: ' "$log" | head -n 8 | sed 's/^/    /' >&2 || true
        grep -aE '^ +#[0-9]+ 0x[0-9a-f]+ in ' "$log" | grep -v -E ' in (__sanitizer|__pthread|__libc|raise|abort|main|_start|fuzzer::)' | head -n 8 |
            sed 's/^ */    /' >&2 || true
        reproducers=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
        if [ -n "$reproducers" ]; then
            for reproducer in $reproducers; do
                echo "fuzz: $name: reproducer: $reproducer" >&2
                echo "fuzz: $name: replay with: $binary $reproducer" >&2
            done
        else
            echo "fuzz: $name: no reproducer written; last lines of the log:" >&2
            tail -n 20 "$log" | sed 's/^/    /' >&2
        fi
        continue
    fi

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    coverage=$(grep -aE '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
    inputs_after=$(find "$corpus" -maxdepth 1 -type f | wc -l)
    echo "fuzz: $name ok: ${elapsed}s, ${runs:-?} runs (${rate:-?}/s), ${coverage:-cov: ?}, corpus $inputs_before -> $inputs_after inputs"
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (reproducers in $crashes/)" >&2
    exit 1
fi
