"""1. The hit path: a cached derivative through imgworker's Nginx
configuration against the same bytes as a plain static file in the same
Nginx, at concurrency 1, 8 and 64, in interleaved rounds."""

import os
import shutil

import load
from util import median, ratio

CONCURRENCY = [1, 8, 64]
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
    shutil.copyfile(cached, os.path.join(stack.static_root,
                                         "static/hit.webp"))
    targets = {"imgworker": DERIVATIVE, "static": "/static/hit.webp"}

    rows = []
    for c in CONCURRENCY:
        runs = {name: [] for name in targets}
        for r in range(ctx.rounds + 1):
            order = list(targets) if r % 2 == 0 else list(targets)[::-1]
            for name in order:
                runs[name].append(load.wrk(stack.base, targets[name], c,
                                           ctx.hit_seconds))
        row = {"concurrency": c, "bytes": len(body)}
        for name, results in runs.items():
            row[name] = summarise(results)
        row["ratio"] = ratio(row["imgworker"]["per_s"],
                             row["static"]["per_s"])
        ctx.log("hit c=%d: imgworker %.0f/s, static %.0f/s, ratio %.3f"
                % (c, row["imgworker"]["per_s"], row["static"]["per_s"],
                   row["ratio"]))
        rows.append(row)
    return rows


def summarise(results):
    """The median of each figure over rounds, and every round's rate."""
    return {
        "per_s": median([r["per_s"] for r in results]),
        "p50_ms": median([r["p50_ms"] for r in results]),
        "p99_ms": median([r["p99_ms"] for r in results]),
        "errors": sum(r["errors"] for r in results),
        "rounds": [r["per_s"] for r in results],
    }
