#!/bin/bash
# Runs every fuzz target of BUILD_DIR for SECONDS each, from a copy of its seed corpus.
# A crash leaves its reproducer in BUILD_DIR/crashes/ and fails the run.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
build=${1:?build dir}
seconds=${2:?seconds}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/crashes"
status=0
for source in "$here"/fuzz_*.cpp; do
  name=$(basename "$source" .cpp)
  binary=$(find "$build" -type f -name "$name" -perm -u+x | head -n1)
  if [ -z "$binary" ]; then
    echo "fuzz: $name was not built" >&2
    status=1
    continue
  fi
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  cp -n "$here/corpus/$name"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $name for ${seconds}s"
  if ! "$binary" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/crashes/$name-" \
      "$corpus" > "$build/$name.log" 2>&1; then
    echo "fuzz: $name FAILED; reproducer(s):" >&2
    ls "$build/crashes/$name-"* >&2 || true
    tail -n 40 "$build/$name.log" >&2
    status=1
    continue
  fi
  grep -E 'stat::number_of_executed_units|cov:' "$build/$name.log" | tail -n 2 | sed "s/^/fuzz: $name: /"
done
exit $status
