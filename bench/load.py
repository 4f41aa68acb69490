"""Runs wrk and reads its closing line (bench/wrk/report.lua)."""

import json
import os
import subprocess

WRK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk")


def wrk(base, path, connections, seconds, script="same.lua", args=None):
    """Loads base+path with `connections` connections for `seconds`;
    returns requests per second, p50 and p99 in ms, and errors. `args`,
    if given, is called with the number of wrk threads and returns the
    script's arguments."""
    # Two threads only where one could not keep up: many connections to
    # a fast URL. Misses need no more than one.
    threads = 2 if connections >= 8 and script == "same.lua" else 1
    cmd = ["wrk", "-t%d" % threads, "-c%d" % connections,
           "-d%ds" % seconds, "--timeout", "60s",
           "-s", os.path.join(WRK_DIR, script), base + path]
    if args:
        cmd += ["--"] + [str(a) for a in args(threads)]
    env = dict(os.environ, LUA_PATH=os.path.join(WRK_DIR, "?.lua") + ";;")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=seconds + 120)
    line = next((l for l in out.stdout.splitlines()
                 if l.startswith("BENCH ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError("wrk failed: %s\n%s%s" % (" ".join(cmd),
                                                    out.stdout, out.stderr))
    raw = json.loads(line[len("BENCH "):])
    return {
        "per_s": round(raw["requests"] / raw["seconds"], 2),
        "requests": raw["requests"],
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["non_2xx"] + raw["socket_errors"],
    }


def unique(base, prefixes, suffixes, links, connections, seconds):
    """Every request a new path: prefix + n + suffix, n counting up;
    several prefixes and suffixes (lists) make a mix."""
    return wrk(base, prefixes[0] + "0" + suffixes[0], connections, seconds,
               "unique.lua", lambda threads: (
                   " ".join(prefixes), " ".join(suffixes), links, threads))


def zipf(base, prefix, suffix, items, s, connections, seconds):
    """Item r of `items` asked for in proportion to 1 / r^s."""
    return wrk(base, prefix + "0" + suffix, connections, seconds,
               "zipf.lua", lambda threads: (prefix, suffix, items, s))
