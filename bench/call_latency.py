"""Latency of calls, measured inside the calling compartment (run there by bench/call.sh).

    python3 call_latency.py FIGURE RUNS WARMUP TARGET SERVICE LOCAL_PATH

Alternating rounds: `bulkhead-call TARGET SERVICE` (the policy check, the target's agent starting
the service, the socket handed over, the service's exit status back) and, as the peer, the same
service executable spawned locally with the same stdin/stdout wiring (the floor: what running it
costs without crossing into another compartment). Each round times posix_spawn to waitpid.
Prints one JSON line in bench_compare's format, with p50/p99 in the notes.

The notes also break the call down, from a long-lived caller that speaks the call protocol on
/run/bulkhead/agent.sock itself (no bulkhead-call process to start): the time until the broker hands
over the connected descriptors, and until the service's exit status arrives.
"""
import array
import json
import os
import socket
import statistics
import struct
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


def direct(target, service):
    """One call without bulkhead-call: (ms until connected, ms until the exit status)."""
    field = lambda text: struct.pack("<I", len(text)) + text.encode()
    start = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as broker:
        broker.connect("/run/bulkhead/agent.sock")
        broker.send(bytes([32]) + field(target) + field(service) + field(""))  # wire::Call
        _, ancillary, _, _ = broker.recvmsg(4096, socket.CMSG_LEN(3 * 4))
        connected = time.perf_counter()
        fds = array.array("i")
        for _, _, data in ancillary:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        if len(fds) != 3:
            sys.exit(f"the call of {service} was refused")
        status = b""
        while chunk := os.read(fds[2], 64):
            status += chunk
        done = time.perf_counter()
        for fd in fds:
            os.close(fd)
    if status != b"status 0\n":
        sys.exit(f"the call of {service} ended with {status!r}")
    return (connected - start) * 1000.0, (done - start) * 1000.0


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
    connected, finished = [], []
    for i in range(warmup + runs):
        a, b = direct(target, service)
        if i >= warmup:
            connected.append(a)
            finished.append(b)
    o, p = summary("bulkhead", " ".join(call), ours), summary("local spawn of the service", local, peer)
    notes = [f"bulkhead-call p50 {o['median_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms; the service spawned locally p50 "
             f"{p['median_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms",
             f"without starting bulkhead-call (a long-lived caller on agent.sock): connected p50 "
             f"{statistics.median(connected):.2f} ms, the service's exit status p50 {statistics.median(finished):.2f} ms, "
             f"p99 {summary('', '', finished)['p99_ms']:.2f} ms",
             f"measured inside the calling compartment by bench/call_latency.py: posix_spawn to waitpid, {runs} "
             f"alternating rounds after {warmup} warm-up rounds"]
    print(json.dumps({"figure": figure, "bulkhead": o, "peer": p, "ratio": o["median_ms"] / p["median_ms"], "notes": notes}))


if __name__ == "__main__":
    main()
