"""1. The hit path: a cached derivative through imgworker's Nginx
configuration against the same bytes as a plain static file in the same
Nginx, at concurrency 1, 8 and 64, in interleaved rounds: four of them,
more than the misses get, because a 2-second run is cheap and one
disturbed run moves its rate by a fifth. The snippet keeps hits' open
files (open_file_cache), which a plain location does not do by default,
so the same file is also served from a location with the same cache:
that ratio is the cost of the snippet's own work. Beside each rate, the
CPU time Nginx's processes spent per request (from /proc), which shows
what the configuration itself costs however the machine's other load
moves the rates.

On a machine of few cores, wrk and Nginx share the processors, so the
rate is set by CPU time per request.
"""

import os
import shutil

import load
from util import cpu_ticks, median, ratio

CONCURRENCY = [1, 8, 64]
TICKS = os.sysconf("SC_CLK_TCK")
DERIVATIVE = "/img/w_300,f_webp/jpeg6/0.jpg"


def run(ctx):
    stack = ctx.stack
    status, cache, body = stack.get(DERIVATIVE)
    status2, cache2, _ = stack.get(DERIVATIVE)
    if (status, cache, status2, cache2) != (200, "miss", 200, "hit"):
        raise RuntimeError("hit path set-up: %s %s, then %s %s"
                           % (status, cache, status2, cache2))
    cached = os.path.join(stack.cache_root, DERIVATIVE[1:] + ".webp")
    os.makedirs(os.path.join(stack.static_root, "static"), exist_ok=True)
    for folder in ("static", "static-cached"):
        os.makedirs(os.path.join(stack.static_root, folder), exist_ok=True)
        shutil.copyfile(cached, os.path.join(stack.static_root, folder,
                                             "hit.webp"))
    targets = {"imgworker": DERIVATIVE, "static": "/static/hit.webp",
               "static_cached": "/static-cached/hit.webp"}

    rows = []
    for c in CONCURRENCY:
        runs = {name: [] for name in targets}
        for r in range(ctx.hit_rounds):
            order = list(targets) if r % 2 == 0 else list(targets)[::-1]
            for name in order:
                pids = stack.nginx_pids()
                before = cpu_ticks(pids)
                result = load.wrk(stack.base, targets[name], c,
                                  ctx.hit_seconds)
                ticks = cpu_ticks(pids) - before
                result["nginx_cpu_us"] = round(
                    ticks * 1e6 / TICKS / max(result["requests"], 1), 1)
                runs[name].append(result)
        row = {"concurrency": c, "bytes": len(body)}
        for name, results in runs.items():
            row[name] = summarise(results)
        row["ratio"] = ratio(row["imgworker"]["per_s"],
                             row["static"]["per_s"])
        row["ratio_cached"] = ratio(row["imgworker"]["per_s"],
                                    row["static_cached"]["per_s"])
        ctx.log("hit c=%d: imgworker %.0f/s %.1f µs, static %.0f/s %.1f µs,"
                " ratio %.3f; against the same open file cache %.3f"
                % (c, row["imgworker"]["per_s"],
                   row["imgworker"]["nginx_cpu_us"],
                   row["static"]["per_s"], row["static"]["nginx_cpu_us"],
                   row["ratio"], row["ratio_cached"]))
        rows.append(row)
    return rows


def summarise(results):
    """The median of each figure over rounds, and every round's rate."""
    return {
        "per_s": median([r["per_s"] for r in results]),
        "p50_ms": median([r["p50_ms"] for r in results]),
        "p99_ms": median([r["p99_ms"] for r in results]),
        "errors": sum(r["errors"] for r in results),
        "nginx_cpu_us": median([r.get("nginx_cpu_us") for r in results]),
        "cpu_ms": median([r.get("cpu_ms") for r in results]),
        "rounds": [r["per_s"] for r in results],
    }
