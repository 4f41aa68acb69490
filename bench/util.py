"""Small helpers the benchmark's modules share: ports, waiting, medians."""

import os
import socket
import statistics
import tempfile
import time


def scratch_dir():
    """Where peers, large originals and each run's files go: never the
    project."""
    path = os.environ.get("BENCH_SCRATCH") or os.path.join(
        tempfile.gettempdir(), "imgworker-bench")
    os.makedirs(path, exist_ok=True)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(ready, what, seconds=20):
    deadline = time.time() + seconds
    while not ready():
        if time.time() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.05)


def wait_listening(port, seconds=30):
    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            return False
    wait_for(listening, "a server on port %d" % port, seconds)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def process_tree(pid):
    """`pid` and every process below it."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, task)) as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def settle(pids, limit=15.0):
    """Waits until the processes `pids` are idle; False if they are still
    busy after `limit` seconds. After a closed-loop run a server may
    still be working through requests its client gave up on, and that
    work must not fall on the next run."""
    deadline = time.time() + limit
    last = cpu_ticks(pids)
    while time.time() < deadline:
        time.sleep(0.15)
        now = cpu_ticks(pids)
        if now == last:
            return True
        last = now
    return False
