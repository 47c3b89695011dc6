#!/usr/bin/env python3
"""Time from a request until the first byte of its output arrives, bulkhead against a peer.

    first_byte.py FIGURE RUNS WARMUP POOL BULKHEAD ROOT TEMPLATE REFERENCE -- PEER_COMMAND...

Used by bench/preload.sh. Each round: wait until `bulkhead ls --json` shows POOL preloaded, running
disposables of TEMPLATE (the pool is full again), then time `BULKHEAD run --root ROOT --disposable
TEMPLATE -- echo x`; wait for the full pool again, then time `PEER_COMMAND echo x`. A time is taken
just before the client is spawned (posix_spawn, stdout on a pipe) and when the first byte can be
read from the pipe; the run then finishes (for bulkhead: the disposable is torn down) and its
output and exit code are checked. Rounds alternate the two sides, so both see the same machine.
REFERENCE, unless "-", names a running persistent compartment: each round also times
`run REFERENCE -- echo x` there (with the pool full), which is what a ready disposable should cost.

Prints one JSON line in bench/lib.bash's format (figure, bulkhead, peer, ratio), plus p90_ms on
each side and notes (p90, end-to-end times, the spawn floor, back-to-back requests).
"""
import json
import os
import statistics
import subprocess
import sys
import time


def spawn_and_time(argv):
    """Returns (first byte in ms, whole run in ms) of argv, checking that it prints x and exits 0."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2),
    ]
    start = time.perf_counter_ns()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    os.close(out_w)
    os.close(err_w)
    first = os.read(out_r, 1)
    first_byte = time.perf_counter_ns()
    rest = b""
    while chunk := os.read(out_r, 65536):
        rest += chunk
    errors = b""
    while chunk := os.read(err_r, 65536):
        errors += chunk
    _, status = os.waitpid(pid, 0)
    done = time.perf_counter_ns()
    os.close(out_r)
    os.close(err_r)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or first + rest != b"x\n":
        sys.exit(f"first_byte: {' '.join(argv)}: exit {code}, stdout {first + rest!r}, stderr {errors.decode(errors='replace')}")
    return (first_byte - start) / 1e6, (done - start) / 1e6


def pool_ready(bulkhead, root, template):
    listing = subprocess.run([bulkhead, "ls", "--root", root, "--json"], check=True, capture_output=True).stdout
    return sum(1 for c in json.loads(listing)["compartments"]
               if c.get("preloaded") and c.get("template") == template and c["state"] == "running")


def wait_for_pool(bulkhead, root, template, pool, timeout=30.0):
    deadline = time.monotonic() + timeout
    while pool_ready(bulkhead, root, template) < pool:
        if time.monotonic() > deadline:
            sys.exit(f"first_byte: the pool of {template} did not refill to {pool} within {timeout:.0f} s")
        time.sleep(0.01)
    time.sleep(0.02)  # let the broker go idle after the last ls


def summary(label, command, times):
    ordered = sorted(times)
    return {
        "label": label,
        "command": command,
        "median_ms": statistics.median(times),
        "mean_ms": statistics.mean(times),
        "stddev_ms": statistics.stdev(times) if len(times) > 1 else 0.0,
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "runs": len(times),
        "p90_ms": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
    }


def main():
    if "--" not in sys.argv:
        sys.exit(__doc__)
    split = sys.argv.index("--")
    figure, runs, warmup, pool, bulkhead, root, template, reference = sys.argv[1:split]
    runs, warmup, pool = int(runs), int(warmup), int(pool)
    peer_argv = sys.argv[split + 1:] + ["echo", "x"]
    ours_argv = [bulkhead, "run", "--root", root, "--disposable", template, "--", "echo", "x"]

    reference_argv = [bulkhead, "run", "--root", root, reference, "--", "echo", "x"]
    ours, ours_total, peer, peer_total, floor, running = [], [], [], [], [], []
    for round_number in range(warmup + runs):
        wait_for_pool(bulkhead, root, template, pool)
        first, total = spawn_and_time(ours_argv)
        wait_for_pool(bulkhead, root, template, pool)
        peer_first, peer_whole = spawn_and_time(peer_argv)
        floor_first, _ = spawn_and_time(["/bin/echo", "x"])
        if reference != "-":
            wait_for_pool(bulkhead, root, template, pool)
            running.append(spawn_and_time(reference_argv)[0])
        if round_number >= warmup:
            ours.append(first)
            ours_total.append(total)
            peer.append(peer_first)
            peer_total.append(peer_whole)
            floor.append(floor_first)
        elif running:
            running.pop()
        print(f"first_byte: round {round_number + 1}/{warmup + runs}: bulkhead {first:.2f} ms, "
              f"peer {peer_first:.2f} ms", file=sys.stderr)

    # Back to back: no pause, so the pool is refilled (or not) between requests as it happens.
    wait_for_pool(bulkhead, root, template, pool)
    burst = [spawn_and_time(ours_argv)[0] for _ in range(min(runs, 20))]

    ours_summary = summary("bulkhead", " ".join(ours_argv), ours)
    peer_summary = summary("bwrap --unshare-all", " ".join(peer_argv), peer)
    notes = [
        f"first byte, p90: bulkhead {ours_summary['p90_ms']:.2f} ms, bwrap {peer_summary['p90_ms']:.2f} ms",
        f"whole run (until the client exits; bulkhead: after the disposable is torn down), median: "
        f"bulkhead {statistics.median(ours_total):.2f} ms, bwrap {statistics.median(peer_total):.2f} ms",
        f"spawn floor (/bin/echo x on the host, no sandbox), median: {statistics.median(floor):.2f} ms",
    ]
    if running:
        notes.append(f"first byte of `run {reference} -- echo x` in a running persistent compartment (no disposable "
                     f"taken, no pool to refill), median: {statistics.median(running):.2f} ms")
    notes += [
        f"each bulkhead request waited for a full pool ({pool} ready disposables in ls --json); "
        f"{len(burst)} requests back to back without waiting: median {statistics.median(burst):.2f} ms, "
        f"max {max(burst):.2f} ms",
        f"measured by bench/first_byte.py: posix_spawn to the first byte read from the client's stdout, "
        f"{runs} alternating rounds after {warmup} warm-up rounds",
    ]
    print(json.dumps({"figure": figure, "bulkhead": ours_summary, "peer": peer_summary,
                      "ratio": ours_summary["median_ms"] / peer_summary["median_ms"], "notes": notes,
                      "burst_ms": burst}))


if __name__ == "__main__":
    main()
