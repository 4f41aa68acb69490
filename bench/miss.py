"""2–4. The miss path, its in-process limit, and the peers.

Each point is one conversion of one original at 300 px wide. Every
request names a hard link not asked for before, so imgworker renders
each one (its cache tree is emptied between runs) and the peers, whose
caches are off, do too. Beside it, in the same rounds, examples/limit.rs
renders the same original with the same options in as many processes as
there are workers: the ceiling for a miss. Rounds alternate the order of
the contenders so that a noisy moment does not always fall on the same
one.
"""

import json
import os
import subprocess
import urllib.error
import urllib.request

import corpus
import load
from hit import summarise
from util import cpu_ticks, ratio, settle

TICKS = os.sysconf("SC_CLK_TCK")

FORMAT_NAME = {"jpeg": "JPEG", "webp": "WebP", "avif": "AVIF",
               "png": "PNG"}

# (original, output format): JPEG to each format from every photo size,
# and PNG to PNG from the RGBA PNG.
POINTS = [(key, fmt) for key in ("jpeg1", "jpeg6", "jpeg12", "jpeg24")
          for fmt in ("jpeg", "webp", "avif")] + [("png3", "png")]


def conversion(key, fmt):
    source = "PNG" if key.startswith("png") else "JPEG"
    return "%s→%s" % (source, FORMAT_NAME[fmt])


def run(ctx):
    rows = []
    for key, fmt in ctx.points:
        rows.append(point(ctx, key, fmt))
    return rows


def fsync_cost(ctx, key="jpeg1", fmt="jpeg"):
    """The same misses with the pool's default (each derivative flushed
    to disk before Nginx can see it) and with `cache_fsync = false`,
    interleaved: the time a worker spends waiting for the disk is time it
    renders nothing, and it weighs most on small originals."""
    off = os.path.join(ctx.run_dir, "no-fsync.toml")
    with open(off, "w") as f:
        f.write("cache_fsync = false\n")
    runs = {"on": [], "off": []}
    for r in range(ctx.rounds):
        for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
            ctx.stack.restart_pool(ctx.workers,
                                   config=off if mode == "off" else None)
            runs[mode].append(imgworker(ctx, key, fmt))
    ctx.stack.restart_pool(ctx.workers)
    result = {"source": corpus.describe(key),
              "conversion": conversion(key, fmt),
              "on": summarise(runs["on"]), "off": summarise(runs["off"])}
    ctx.log("fsync %s %s: %.1f/s with, %.1f/s without" % (
        result["source"], result["conversion"], result["on"]["per_s"],
        result["off"]["per_s"]))
    return result


def point(ctx, key, fmt):
    suffix = corpus.extension(key)
    contenders = {"imgworker": lambda: imgworker(ctx, key, fmt),
                  "limit": lambda: limit(ctx, key, fmt)}
    peers = {}
    for peer in ctx.peers:
        where = peer.url(key, fmt)
        if where is None:
            peers[peer.name] = {"unsupported": True}
            continue
        base, prefix = where
        problem = check(base + prefix + "0" + suffix)
        if problem:
            peers[peer.name] = {"failed": problem}
            continue
        contenders[peer.name] = (
            lambda base=base, prefix=prefix, peer=peer: measured(
                peer.pids(), lambda: load.unique(
                    base, [prefix], [suffix], ctx.links,
                    ctx.miss_connections, ctx.seconds), peer.restart))

    # The peers run one round; imgworker and its limit, whose ratio is a
    # target, run every round.
    results = {name: [] for name in contenders}
    for r in range(ctx.rounds):
        order = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
        for name in order:
            if r > 0 and name not in ("imgworker", "limit"):
                continue
            results[name].append(contenders[name]())

    row = {"original": key, "source": corpus.describe(key),
           "conversion": conversion(key, fmt), "format": fmt}
    for name, runs in results.items():
        summary = summarise(runs)
        if name in ("imgworker", "limit"):
            row[name] = summary
        else:
            peers[name] = summary
    row["peers"] = peers
    row["miss_vs_limit"] = ratio(row["imgworker"]["per_s"],
                                 row["limit"]["per_s"])
    rates = [p["per_s"] for p in peers.values() if "per_s" in p]
    row["miss_vs_best_peer"] = ratio(row["imgworker"]["per_s"],
                                     max(rates)) if rates else None
    ctx.log("miss %s %s: %.1f/s, limit %.1f/s%s" % (
        row["source"], row["conversion"], row["imgworker"]["per_s"],
        row["limit"]["per_s"], "".join(
            ", %s %.1f/s" % (n, p["per_s"]) for n, p in peers.items()
            if "per_s" in p)))
    return row


def imgworker(ctx, key, fmt):
    stack = ctx.stack
    stack.clear_cache()
    prefix = "/img/w_300,f_%s/%s/" % (fmt, key)
    suffix = corpus.extension(key)
    status, cache, _ = stack.get(prefix + "0" + suffix)
    if (status, cache) != (200, "miss"):
        raise RuntimeError("%s%s: %s %s" % (prefix, suffix, status, cache))
    result = measured(stack.pids() + stack.nginx_pids(), lambda: load.unique(
        stack.base, [prefix], [suffix], ctx.links, ctx.miss_connections,
        ctx.seconds))
    stack.clear_cache()
    return result


def measured(pids, run, restart=None):
    """Runs wrk and adds the server's CPU time per answer, over the run's
    own window (processes `pids`), then waits until they are idle: a
    closed-loop client leaves work behind when it stops, which must fall
    on neither this run's count nor the next run. A server with
    `restart` is restarted instead if that work would take long (a slow
    peer on a large original)."""
    before = cpu_ticks(pids)
    result = run()
    ticks = cpu_ticks(pids) - before
    if not settle(pids, 15.0 if restart is None else 2.0):
        restart()
    result["cpu_ms"] = round(ticks * 1000 / TICKS
                             / max(result["requests"], 1), 1)
    return result


def limit(ctx, key, fmt):
    original = os.path.join(ctx.source_root, key, "0" + corpus.extension(key))
    out = subprocess.run(
        [ctx.limit_binary, "--processes", str(ctx.workers), "--seconds",
         str(ctx.seconds), "--options", "w_300,f_" + fmt, original],
        capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    result["errors"] = 0
    return result


def check(url):
    """Why one request to a peer fails, or None when it answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=120) as reply:
            reply.read()
            return None if reply.status == 200 else "HTTP %d" % reply.status
    except urllib.error.HTTPError as err:
        return "HTTP %d" % err.code
    except OSError as err:
        return str(err)
