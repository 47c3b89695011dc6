"""Call latency of one compartment while another floods the broker with calls (bench/call_flood.sh).

    python3 call_flood.py measure RUNS WARMUP TARGET SERVICE
        Run inside the calling compartment: times WARMUP + RUNS calls `bulkhead-call TARGET SERVICE`
        one after the other (posix_spawn to waitpid, as call_latency.py does) and prints one JSON
        object: the timed calls' milliseconds, the failed calls (exit code and message; they are not
        timed) and the measurement window in wall-clock seconds.

    python3 call_flood.py report FIGURE IDLE_JSON FLOOD_JSON FLOOD_LOG FLOOD_TOTAL FLOOD_LOOPS FLOOD_STOPPED THROTTLED
        Run on the host: turns the idle and the flood measurement into one JSON line in
        bench_compare's format (bulkhead = during the flood, peer = idle) with p50/p99 and the
        flood's own counts in the notes. FLOOD_LOG holds one line per flood call ("o TIME" for a call
        that succeeded, "f CODE TIME" for one that failed) and the lines "t0 TIME" / "t1 TIME" at the
        flood's start and end (TIME: wall-clock seconds). THROTTLED: a file holding the broker's log
        line that says it throttles the flood, empty if it did not before the measurement.
"""
import json
import os
import sys
import time


def measure(runs, warmup, target, service):
    call = ["/run/bulkhead/bin/bulkhead-call", target, service]
    env = {"PATH": "/usr/bin:/bin:/run/bulkhead/bin"}
    # The call's stderr goes to a memfd, so that a failure's message can be reported; stdin is /dev/null.
    errors = os.memfd_create("bulkhead-call-stderr")
    null = os.open("/dev/null", os.O_RDONLY)
    actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, errors, 2)]
    times, failures = [], []
    start = None
    for i in range(warmup + runs):
        if i == warmup:
            start = time.time()
        os.ftruncate(errors, 0)
        os.lseek(errors, 0, os.SEEK_SET)
        begin = time.perf_counter()
        pid = os.posix_spawn(call[0], call, env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter() - begin) * 1000.0
        code = os.waitstatus_to_exitcode(status)
        if i < warmup:
            continue
        if code == 0:
            times.append(elapsed)
        else:
            os.lseek(errors, 0, os.SEEK_SET)
            message = os.read(errors, 4096).decode(errors="replace").strip()
            failures.append({"code": code, "ms": elapsed, "message": message})
    print(json.dumps({"times": times, "failures": failures, "window": [start, time.time()]}))


def report(figure, idle_file, flood_file, flood_log, total, loops, stopped, throttled_file):
    from call_latency import summary  # beside this file on the host (report runs there, measure does not)
    idle, flood = json.load(open(idle_file)), json.load(open(flood_file))
    for name, result in (("idle", idle), ("during the flood", flood)):
        if not result["times"]:
            sys.exit(f"bench: call_flood: no call of the caller succeeded {name}: {result['failures'][:3]}")
    ok, failed, codes, t0, t1 = [], [], {}, None, None
    for line in open(flood_log):
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "o" and len(fields) == 2:
            ok.append(float(fields[1]))
        elif fields[0] == "f" and len(fields) == 3:
            failed.append(float(fields[2]))
            codes[fields[1]] = codes.get(fields[1], 0) + 1
        elif fields[0] == "t0" and len(fields) == 2:
            t0 = float(fields[1])
        elif fields[0] == "t1" and len(fields) == 2:
            t1 = float(fields[1])
    command = "bulkhead-call callee SERVICE"
    o = summary("during a flood", command, flood["times"])
    p = summary("idle", command, idle["times"])
    w0, w1 = flood["window"]
    in_window = sum(1 for t in ok + failed if w0 <= t <= w1)
    notes = [f"during the flood p50 {o['median_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms; idle p50 {p['median_ms']:.2f} ms, "
             f"p99 {p['p99_ms']:.2f} ms (target: ratio <= 2)",
             f"the flood: {len(ok) + len(failed)} of {total} calls made from the compartment flooder ({loops} parallel loops), "
             f"{len(ok)} succeeded, {len(failed)} failed"
             + (f" (exit codes: {', '.join(f'{c} x{n}' for c, n in sorted(codes.items()))}; "
                f"{sum(1 for t in failed if t > w1)} of them after the caller's measurement)" if codes else "")
             + ("; flooder stopped after the measurement (a flood call cut short by the stop fails)" if stopped == "1" else ""),
             f"flood calls finished while the caller was measured: {in_window} in {w1 - w0:.2f} s "
             f"({in_window / max(w1 - w0, 1e-9):.0f}/s)"]
    throttled = open(throttled_file).read().strip()
    cpus = len(os.sched_getaffinity(0))
    notes.append((f"the broker throttled the flood before the measurement began: {throttled!r}" if throttled else
                  "the broker did NOT throttle the flood before the measurement (measured after 300 flood calls)")
                 + f" (the throttle: a burst of 200 calls, then 20 per second per CPU = {20 * cpus}/s on {cpus} CPUs, "
                 "at most 32 open callers)")
    done = len(ok) + len(failed)
    if t0 is not None and done:
        end = t1 if t1 is not None else max(ok + failed)
        notes.append(f"the whole flood{'' if t1 is not None else ' until it was stopped'}: {done} calls in "
                     f"{end - t0:.2f} s ({done / max(end - t0, 1e-9):.0f}/s)")
    for name, result in (("idle", idle), ("during the flood", flood)):
        if result["failures"]:
            first = result["failures"][0]
            notes.append(f"calls of the caller that FAILED {name}: {len(result['failures'])} (not timed); the first: "
                         f"exit code {first['code']} after {first['ms']:.2f} ms: {first['message']!r}")
    notes.append("timed inside the compartment caller by bench/call_flood.py: posix_spawn to waitpid, idle first, then "
                 "while flooder runs its loops")
    print(json.dumps({"figure": figure, "bulkhead": o, "peer": p, "ratio": o["median_ms"] / p["median_ms"], "notes": notes}))


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "measure":
        measure(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif len(sys.argv) == 10 and sys.argv[1] == "report":
        report(*sys.argv[2:10])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
