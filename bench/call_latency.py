"""Latency of calls, measured inside the calling compartment (run there by bench/call.sh).

    python3 call_latency.py FIGURE RUNS WARMUP TARGET SERVICE LOCAL_PATH

Alternating rounds: `bulkhead-call TARGET SERVICE` (the policy check, the target's agent starting
the service, the socket handed over, the service's exit status back) and, as the peer, the same
service executable spawned locally with the same stdin/stdout wiring (the floor: what running it
costs without crossing into another compartment). Each round times posix_spawn to waitpid.
Prints one JSON line in bench_compare's format, with p50/p99 in the notes.
"""
import json
import os
import statistics
import sys
import time


def timed(argv):
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin:/run/bulkhead/bin"})
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter() - start) * 1000.0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} failed: {status}")
    return elapsed


def summary(label, command, times):
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
    return {"label": label, "command": command, "median_ms": statistics.median(times), "mean_ms": statistics.mean(times),
            "stddev_ms": statistics.stdev(times) if len(times) > 1 else 0.0, "min_ms": ordered[0], "max_ms": ordered[-1],
            "runs": len(times), "p99_ms": pick(0.99)}


def main():
    figure, runs, warmup, target, service, local = sys.argv[1:7]
    runs, warmup = int(runs), int(warmup)
    call = ["/run/bulkhead/bin/bulkhead-call", target, service]
    ours, peer = [], []
    for i in range(warmup + runs):
        a, b = timed(call), timed([local])
        if i >= warmup:
            ours.append(a)
            peer.append(b)
    o, p = summary("bulkhead", " ".join(call), ours), summary("local spawn of the service", local, peer)
    notes = [f"bulkhead-call p50 {o['median_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms; the service spawned locally p50 "
             f"{p['median_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms",
             f"measured inside the calling compartment by bench/call_latency.py: posix_spawn to waitpid, {runs} "
             f"alternating rounds after {warmup} warm-up rounds"]
    print(json.dumps({"figure": figure, "bulkhead": o, "peer": p, "ratio": o["median_ms"] / p["median_ms"], "notes": notes}))


if __name__ == "__main__":
    main()
