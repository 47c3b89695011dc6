# Shared by the benchmark scripts bench/*.sh (sourced, not run). See bench/README.md.
#
# Environment (bench/run sets it; defaults let a script run on its own):
#   BULKHEAD       the bulkhead binary                       (default: build/bulkhead)
#   BENCH_RUNS     timed runs per command                    (default: 200)
#   BENCH_WARMUP   untimed runs per command before timing    (default: 10)
#   BENCH_RAW_DIR  where hyperfine's JSON exports go         (default: bench/, ignored by git)

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
BULKHEAD=${BULKHEAD:-$repo_dir/build/bulkhead}
BENCH_RUNS=${BENCH_RUNS:-200}
BENCH_WARMUP=${BENCH_WARMUP:-10}
BENCH_RAW_DIR=${BENCH_RAW_DIR:-$bench_dir}

bench_fail() {
    echo "bench: $*" >&2
    exit 1
}

bench_require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || bench_fail "'$tool' is not installed (make bench-deps installs the peers)"
    done
}

# bench_compare NAME FIGURE OURS_COMMAND PEER_LABEL PEER_COMMAND
#
# Times OURS_COMMAND (bulkhead) and PEER_COMMAND side by side in one hyperfine run and prints the
# figure's result as one JSON line on stdout; everything else goes to stderr. The commands are
# strings that hyperfine runs without a shell (-N), split on spaces: no quoting, no pipes.
# Each command is run once beforehand, so that a broken one fails with its own error message
# instead of a hyperfine abort.
bench_compare() {
    local name=$1 figure=$2 ours=$3 peer_label=$4 peer=$5
    local raw=$BENCH_RAW_DIR/$name.json
    local command errors
    for command in "$ours" "$peer"; do
        # shellcheck disable=SC2086 # the command is a space-separated word list, as hyperfine -N reads it
        errors=$($command 2>&1 >/dev/null) || bench_fail "$name: '$command' failed: $errors"
    done

    hyperfine -N --style basic --warmup "$BENCH_WARMUP" --runs "$BENCH_RUNS" --export-json "$raw" \
        --command-name bulkhead "$ours" --command-name "$peer_label" "$peer" >&2

    python3 - "$raw" "$figure" "$peer_label" "$ours" "$peer" <<'EOF'
import json, statistics, sys

raw, figure, peer_label, ours_command, peer_command = sys.argv[1:6]
results = json.load(open(raw))["results"]
if len(results) != 2:
    sys.exit(f"bench: {raw}: expected 2 results, found {len(results)}")

def summary(result, label, command):
    times = [t * 1000 for t in result["times"]]
    return {
        "label": label,
        "command": command,
        "median_ms": statistics.median(times),
        "mean_ms": statistics.mean(times),
        "stddev_ms": statistics.stdev(times) if len(times) > 1 else 0.0,
        "min_ms": min(times),
        "max_ms": max(times),
        "runs": len(times),
    }

ours = summary(results[0], "bulkhead", ours_command)
peer = summary(results[1], peer_label, peer_command)
print(json.dumps({"figure": figure, "bulkhead": ours, "peer": peer,
                  "ratio": ours["median_ms"] / peer["median_ms"], "raw": raw}))
EOF
}
