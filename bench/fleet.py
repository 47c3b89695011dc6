#!/usr/bin/env python3
"""Starts N sandboxes of a peer at once, PARALLEL in flight, and measures what they cost.

    fleet.py N PARALLEL -- COMMAND...

Used by bench/density.sh for its peer. COMMAND must print a line once it runs inside its sandbox
and then stay (e.g. `bwrap ... sh -c 'echo ready; exec sleep infinity'`): a sandbox counts as
started when that line arrives. One thread, no pool of threads: bwrap --die-with-parent ties a
sandbox to the thread that spawned it.

Prints one JSON object: start_ms (all N started), memory_used_kib (MemTotal - MemAvailable growth,
what `free` calls used), rss_kib (sum of VmRSS over every sandbox's process tree), stop_ms (SIGTERM
to all, until every process of their trees is gone), started, failures, processes, left.
"""
import json
import os
import selectors
import signal
import subprocess
import sys
import time


def used_kib():
    info = {}
    for line in open("/proc/meminfo"):
        key, value = line.split(":")
        info[key] = int(value.split()[0])
    return info["MemTotal"] - info["MemAvailable"]


def tree(pid):
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in open(f"/proc/{pid}/task/{task}/children").read().split():
                pids += tree(int(child))
    except OSError:
        pass
    return pids


def start_time(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:  # gone (ENOENT), or going (ESRCH)
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    split = sys.argv.index("--")
    count, parallel = int(sys.argv[1]), int(sys.argv[2])
    command = sys.argv[split + 1:]
    before = used_kib()
    selector = selectors.DefaultSelector()
    started, failures, in_flight, spawned = [], [], 0, 0
    begin = time.perf_counter()
    while len(started) + len(failures) < count:
        while in_flight < parallel and spawned < count:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL)
            selector.register(process.stdout, selectors.EVENT_READ, process)
            spawned += 1
            in_flight += 1
        for key, _ in selector.select():
            process = key.data
            line = process.stdout.readline()
            selector.unregister(process.stdout)
            in_flight -= 1
            (started if line else failures).append(process)
    start_ms = (time.perf_counter() - begin) * 1000
    time.sleep(1)
    memory = used_kib() - before
    rss = sum(rss_kib(pid) for process in started for pid in tree(process.pid))
    members = {pid: start_time(pid) for process in started for pid in tree(process.pid)}
    begin = time.perf_counter()
    for process in started + failures:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started + failures:
        process.wait()
        process.stdout.close()
    deadline = time.monotonic() + 10
    while (left := [pid for pid, since in members.items() if start_time(pid) == since]) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop_ms = (time.perf_counter() - begin) * 1000
    print(json.dumps({"start_ms": start_ms, "memory_used_kib": memory, "rss_kib": rss, "stop_ms": stop_ms,
                      "started": len(started), "failures": len(failures), "processes": len(members),
                      "left": len(left)}))


if __name__ == "__main__":
    main()
