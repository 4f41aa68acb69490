"""6. Memory of one worker.

Peak: a pool of one worker makes a 300 px JPEG from each large original
in turn; before each, the worker's peak is reset (writing 5 to
/proc/<pid>/clear_refs) and after it VmHWM, the peak resident set, is
read from /proc/<pid>/status.

Growth: a pool of as many workers as cores then answers 10,000 misses
between them, a mix of every output format from a JPEG and a small RGBA
PNG (at 100 px, so the run stays short while every decoder, encoder and
the whole request path are exercised), and each worker's resident set is
read as it goes. The pool's own retirement of workers after a number of
requests is turned off for this run where the binary knows the setting,
since it would hide the very growth measured here.
"""

import os
import subprocess

import corpus
import load
from util import settle

PEAK_CASES = [
    ("24 MP JPEG (largest photo)", "jpeg24/0.jpg"),
    ("54 MP JPEG (made from it)", "big/milkyway-54mp-6000x9000.jpg"),
    ("24 MP progressive JPEG", "big/milkyway-24mp-progressive.jpg"),
]
LEAK_MIX = [("/img/w_100,f_%s/jpeg1/" % f, ".jpg")
            for f in ("jpeg", "webp", "avif", "png")] + [
    ("/img/w_100,f_png/pngtiny/", ".png")]
REQUESTS = 10_000


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def run(ctx, scratch):
    stack = ctx.stack
    big = os.path.join(ctx.source_root, "big")
    os.makedirs(big, exist_ok=True)
    for path in corpus.make_large(ctx.corpus, scratch).values():
        target = os.path.join(big, os.path.basename(path))
        if not os.path.exists(target):
            os.link(path, target)

    stack.restart_pool(1, config=no_retirement(ctx))
    [pid] = stack.worker_pids()
    result = {"idle_rss_mb": mb(status_kb(pid, "VmRSS")), "peaks": []}
    for label, path in PEAK_CASES:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        status, _, body = stack.get("/img/w_300/" + path)
        if status != 200:
            raise RuntimeError("memory: %s answered %s" % (path, status))
        peak = mb(status_kb(pid, "VmHWM"))
        result["peaks"].append({"original": label, "peak_rss_mb": peak})
        ctx.log("memory %s: peak %.1f MB" % (label, peak))

    stack.restart_pool(ctx.workers, config=no_retirement(ctx))
    result["growth"] = growth(ctx, stack.worker_pids())
    stack.restart_pool(ctx.workers)
    stack.clear_cache()
    return result


def growth(ctx, pids):
    """Misses until REQUESTS are served, sampling each worker's RSS; the
    growth is the largest of any worker from the first sample past 1,000
    requests (once its caches are warm) to the last."""
    stack = ctx.stack
    start = stack.misses_served()
    samples = []
    while True:
        served = stack.misses_served() - start
        samples.append({"requests": served, "rss_mb": [
            mb(status_kb(pid, "VmRSS")) for pid in pids]})
        if served >= REQUESTS:
            break
        stack.clear_cache()
        load.unique(stack.base, [p for p, _ in LEAK_MIX],
                    [s for _, s in LEAK_MIX], ctx.links,
                    2 * len(pids), ctx.leak_chunk_seconds)
        settle(stack.pids())
    if sorted(stack.worker_pids()) != sorted(pids):
        raise RuntimeError("memory: a worker was replaced mid-run")
    warm = next(s for s in samples if s["requests"] >= 1000)
    last = samples[-1]
    grew = [b - a for a, b in zip(warm["rss_mb"], last["rss_mb"])]
    # A leak grows all along; a warm-up step (a worker's heap reaching the
    # size its largest moment needs) happens once. The second half of the
    # run tells them apart.
    middle = next(s for s in samples
                  if s["requests"] >= last["requests"] / 2)
    late = [b - a for a, b in zip(middle["rss_mb"], last["rss_mb"])]
    ctx.log("memory growth: %s MB at %d requests, %s MB at %d"
            % (warm["rss_mb"], warm["requests"], last["rss_mb"],
               last["requests"]))
    return {"workers": len(pids), "samples": samples, "warm": warm,
            "last": last, "growth_mb": round(max(grew), 1),
            "middle": middle, "late_growth_mb": round(max(late), 1)}


def no_retirement(ctx):
    """A configuration file that keeps each worker for the whole run, and
    does not wait for the disk after each derivative (memory is what is
    measured here, and the run is shorter); None when this build does not
    know these settings."""
    path = os.path.join(ctx.run_dir, "no-retirement.toml")
    with open(path, "w") as f:
        f.write("max_requests = 0\ncache_fsync = false\n")
    check = subprocess.run([ctx.binary, "check-config", path],
                           capture_output=True)
    return path if check.returncode == 0 else None


def mb(kb):
    return round(kb / 1024, 1) if kb is not None else None
