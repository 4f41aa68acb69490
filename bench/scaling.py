"""5. Scaling and the mixed run.

Scaling: images per second for misses (6 MP JPEG→WebP, 300 px) with 1, 2
and 4 workers, each at concurrency 1, N and 8N (N, the workers), so the
point where more workers or more clients stop helping shows.

Mixed: the way sites are read. URLs follow a Zipf law over a catalogue
of derivatives; the popular head is in the cache before the run (the
one derivative, hard linked under each URL's file name), sized so that
about 95% of requests are hits. Misses are counted from the workers' own
log lines, so the hit ratio shown is the one measured.
"""

import math
import os

import load
from util import settle

PREFIX, SUFFIX = "/img/w_300,f_webp/jpeg6/", ".jpg"
ZIPF_S = 1.0
HIT_SHARE = 0.95


def scaling(ctx):
    stack = ctx.stack
    rows = []
    for workers in (1, 2, 4):
        stack.restart_pool(workers)
        for c in sorted({1, workers, 8 * workers}):
            stack.clear_cache()
            result = load.unique(stack.base, [PREFIX], [SUFFIX], ctx.links,
                                 c, ctx.seconds)
            settle(stack.pids())
            rows.append(dict(result, workers=workers, concurrency=c))
            ctx.log("scaling workers=%d c=%d: %.1f images/s"
                    % (workers, c, result["per_s"]))
    stack.restart_pool(ctx.workers)
    stack.clear_cache()
    return rows


def mixed(ctx, connections=64):
    stack = ctx.stack
    items = ctx.links
    head = head_size(items, ZIPF_S, HIT_SHARE)
    status, cache, _ = stack.get(PREFIX + "0" + SUFFIX)
    if status != 200:
        raise RuntimeError("mixed set-up: %s" % status)
    first = os.path.join(stack.cache_root, (PREFIX + "0" + SUFFIX)[1:]
                         + ".webp")
    for n in range(1, head):
        os.link(first, os.path.join(os.path.dirname(first),
                                    "%d%s.webp" % (n, SUFFIX)))

    before = stack.misses_served()
    result = load.zipf(stack.base, PREFIX, SUFFIX, items, ZIPF_S,
                       connections, ctx.mixed_seconds)
    settle(stack.pids())
    misses = stack.misses_served() - before
    result.update(concurrency=connections, items=items, zipf_s=ZIPF_S,
                  cached_before=head, misses=misses,
                  hit_ratio=round(1 - misses / max(result["requests"], 1),
                                  4))
    ctx.log("mixed: %.0f req/s, %.1f%% hits" % (result["per_s"],
                                                100 * result["hit_ratio"]))
    stack.clear_cache()
    return result


def head_size(items, s, share):
    """How many of the most popular items carry `share` of requests."""
    weights = [1 / math.pow(r, s) for r in range(1, items + 1)]
    total, running = sum(weights), 0.0
    for n, w in enumerate(weights, 1):
        running += w
        if running >= share * total:
            return n
    return items
