"""The benchmark's driver: scripts/bench builds, then runs this.

It lays out a source root of hard-linked originals in a scratch folder,
starts imgworker behind the project's Nginx configuration on loopback
(and, with --peers, the other servers), runs each section in turn, then
prints the tables and writes them, with every figure, as markdown and
JSON. Everything it starts is stopped and its run folder removed; the
peers' installs and the large originals it makes stay in the scratch
folder for the next run.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import types

import corpus
import hit
import machine
import memory
import miss
import peers
import report
import scaling
from stack import Stack
from util import scratch_dir


def parse_args():
    p = argparse.ArgumentParser(prog="scripts/bench")
    p.add_argument("--peers", action="store_true",
                   help="also measure image_filter, thumbor and ipx")
    p.add_argument("--quick", action="store_true",
                   help="a short run of a few points, to try the bench")
    p.add_argument("--out", default=None,
                   help="folder for bench.md and bench.json "
                   "(default: target/bench)")
    return p.parse_args()


def main():
    args = parse_args()
    # Stopped by a signal, still stop everything started (the finally
    # below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    scratch = scratch_dir()
    run_dir = tempfile.mkdtemp(prefix="run.", dir=scratch)
    os.chmod(run_dir, 0o755)
    out_dir = args.out or os.path.join(project, "target/bench")
    started = time.time()

    def log(text):
        print("[%4.0fs] %s" % (time.time() - started, text),
              file=sys.stderr, flush=True)

    workers = os.cpu_count() or 1
    ctx = types.SimpleNamespace(
        project=project, run_dir=run_dir, log=log, workers=workers,
        corpus=os.path.normpath(os.path.join(project, "../shared/corpus")),
        source_root=os.path.join(run_dir, "originals"),
        binary=os.path.join(project, "target/release/imgworker"),
        limit_binary=os.path.join(project, "target/release/limit"),
        seconds=3, rounds=2, hit_seconds=2, hit_rounds=4, mixed_seconds=8,
        leak_chunk_seconds=5, miss_connections=8, links=10_000,
        points=miss.POINTS, peers=[])
    if args.quick:
        ctx.seconds, ctx.rounds, ctx.hit_seconds, ctx.hit_rounds = 1, 1, 1, 1
        ctx.mixed_seconds, ctx.links = 2, 2_000
        ctx.points = [("jpeg6", "webp"), ("png3", "png")]

    results = {"machine": machine.describe(), "settings": {
        "workers": workers, "seconds": ctx.seconds, "rounds": ctx.rounds,
        "hit_seconds": ctx.hit_seconds, "hit_rounds": ctx.hit_rounds,
        "miss_connections": ctx.miss_connections, "peers": args.peers}}
    log(machine.line(results["machine"]))
    corpus.build_source_root(ctx.corpus, ctx.source_root, ctx.links)
    ctx.stack = Stack(project, run_dir, ctx.source_root)
    try:
        ctx.stack.start(workers)
        if args.peers:
            start_peers(ctx, scratch)
        results["hit"] = hit.run(ctx)
        results["miss"] = miss.run(ctx)
        for peer in ctx.peers:
            peer.stop()
        results["fsync"] = miss.fsync_cost(ctx)
        results["scaling"] = scaling.scaling(ctx)
        results["mixed"] = scaling.mixed(ctx)
        results["memory"] = memory.run(ctx, scratch)
    finally:
        for peer in ctx.peers:
            peer.stop()
        ctx.stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)

    results["seconds_taken"] = round(time.time() - started)
    text = report.markdown(results)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    with open(os.path.join(out_dir, "bench.md"), "w") as f:
        f.write(text)
    print(text)
    log("done; written to %s/bench.{md,json}" % out_dir)


def start_peers(ctx, scratch):
    missing = peers.available()
    if missing:
        raise SystemExit("--peers needs " + missing +
                         " (IMGWORKER_BENCH=peers scripts/install-deps)")
    home = peers.install(scratch, ctx.log)
    ctx.peers = [peers.ImageFilter(ctx.run_dir, ctx.source_root,
                                   ctx.workers),
                 peers.Thumbor(home, ctx.run_dir, ctx.source_root,
                               ctx.workers),
                 peers.Ipx(home, ctx.source_root)]
    for peer in ctx.peers:
        peer.start()
        ctx.log("started %s" % peer.name)


if __name__ == "__main__":
    main()
