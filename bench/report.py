"""The benchmark's results as markdown tables (for the terminal and the
README) and the targets each run is judged against. Run alone, it prints
the tables of a JSON file a run wrote:

    python3 bench/report.py target/bench/bench.json
"""

import json
import sys
import textwrap

import machine

PEERS = ["image_filter", "thumbor", "ipx"]


def num(value, digits=1):
    if value is None:
        return "–"
    if value >= 1000:
        return "{:,.0f}".format(value)
    return "%.*f" % (digits, value)


def rate(result):
    if result is None:
        return "–"
    if result.get("unsupported"):
        return "cannot"
    if "failed" in result:
        return "failed (%s)" % result["failed"]
    if result.get("per_s") == 0:
        return "none in the run"
    flag = " (%d errors)" % result["errors"] if result.get("errors") else ""
    return "%s (%s)%s" % (num(result["per_s"]), num(result.get("cpu_ms")),
                          flag)


def markdown(results):
    s = results["settings"]
    out = ["**%s**; %d workers, %d s per run, %d rounds"
           % (machine.line(results["machine"]), s["workers"], s["seconds"],
              s["rounds"]), ""]
    out += hit_table(results["hit"], s)
    out += miss_table(results["miss"], s)
    if "fsync" in results:
        out += fsync_line(results["fsync"])
    if "scaling" in results:
        out += scaling_table(results["scaling"])
    if "mixed" in results:
        out += mixed_table(results["mixed"])
    if "memory" in results:
        out += memory_table(results["memory"])
    out += ["Targets:", ""] + ["- " + t for t in targets(results)]
    return "\n".join(wrap(line) for line in out) + "\n"


def wrap(line, width=79):
    """Prose at the README's width; table rows stay whole."""
    if len(line) <= width or line.startswith("|"):
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(line, width, subsequent_indent=indent,
                         break_on_hyphens=False)


def hit_table(rows, settings):
    out = ["Hit path: a cached derivative (%d bytes) through imgworker's "
           "Nginx configuration, and the same bytes as a static file in "
           "the same Nginx; last, the static file from a location with the "
           "snippet's open_file_cache. Medians of %d interleaved rounds of "
           "%d s." % (rows[0]["bytes"], settings.get("hit_rounds", 0),
                      settings.get("hit_seconds", 0)), "",
           "| concurrency | hit req/s | p50 / p99 ms | Nginx CPU µs/req "
           "| static req/s | p50 / p99 ms | Nginx CPU µs/req "
           "| hit / static | static cached req/s | Nginx CPU µs/req "
           "| hit / static cached |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        h, st = r["imgworker"], r["static"]
        sc = r.get("static_cached")
        cached = ("%s | %s | %.3f" % (num(sc["per_s"]),
                                       num(sc["nginx_cpu_us"]),
                                       r["ratio_cached"])
                  if sc else "not run | | ")
        out.append("| %d | %s | %s / %s | %s | %s | %s / %s | %s | %.3f | %s |"
                   % (r["concurrency"], num(h["per_s"]), num(h["p50_ms"], 2),
                      num(h["p99_ms"], 2), num(h["nginx_cpu_us"]),
                      num(st["per_s"]), num(st["p50_ms"], 2),
                      num(st["p99_ms"], 2), num(st["nginx_cpu_us"]),
                      r["ratio"], cached))
    return out + [""]


def miss_table(rows, s):
    out = ["Miss path: images/s (CPU ms per image) at concurrency %d, "
           "300 px wide, every request a new URL; the limit is the same "
           "render in %d processes with no Nginx and no FastCGI. CPU time "
           "is the server's, Nginx included for imgworker."
           % (s["miss_connections"], s["workers"]), "",
           "| original | conversion | imgworker miss | limit | miss / limit "
           "| " + " | ".join(PEERS) + " | miss / best peer |",
           "|---|---|---:|---:|---:|" + "---:|" * len(PEERS) + "---:|"]
    for r in rows:
        peers = [rate(r["peers"].get(p)) if r["peers"] else "not run"
                 for p in PEERS]
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            r["source"], r["conversion"], rate(r["imgworker"]),
            rate(r["limit"]), num(r["miss_vs_limit"], 2),
            " | ".join(peers), num(r["miss_vs_best_peer"], 2)))
    return out + [""]


def fsync_line(f):
    return ["The disk's share: %s %s misses at %s/s (%s CPU ms) with each "
            "derivative flushed to disk (`cache_fsync = true`, the default, "
            "as above) and %s/s (%s) without." % (
                f["source"], f["conversion"], num(f["on"]["per_s"]),
                num(f["on"]["cpu_ms"]), num(f["off"]["per_s"]),
                num(f["off"]["cpu_ms"])), ""]


def scaling_table(rows):
    counts = sorted({r["workers"] for r in rows})
    out = ["Scaling: misses/s (6 MP JPEG→WebP, 300 px) by workers N and "
           "concurrency.", "",
           "| workers | c=1 | c=N | c=8N |", "|---:|---:|---:|---:|"]
    for n in counts:
        by_c = {r["concurrency"]: r for r in rows if r["workers"] == n}
        cells = [by_c.get(c) for c in (1, n, 8 * n)]
        out.append("| %d | %s |" % (n, " | ".join(
            "%s (c=%d)" % (num(x["per_s"]), x["concurrency"]) if x else "–"
            for x in cells)))
    return out + [""]


def mixed_table(m):
    return ["Mixed: Zipf (s=%.1f) over %d URLs, the popular head cached "
            "beforehand, at concurrency %d." % (m["zipf_s"], m["items"],
                                                m["concurrency"]), "",
            "| req/s | p50 ms | p99 ms | hits |", "|---:|---:|---:|---:|",
            "| %s | %s | %s | %.1f%% |" % (num(m["per_s"]),
                                          num(m["p50_ms"], 2),
                                          num(m["p99_ms"], 1),
                                          100 * m["hit_ratio"]), ""]


def memory_table(m):
    g = m["growth"]
    out = ["Memory of one worker (idle: %s MB): peak RSS (VmHWM) while "
           "making a 300 px JPEG." % num(m["idle_rss_mb"]), "",
           "| original | peak RSS MB |", "|---|---:|"]
    out += ["| %s | %s |" % (p["original"], num(p["peak_rss_mb"]))
            for p in m["peaks"]]
    out += ["", "RSS of each of %d workers after %d requests between "
            "them: %s MB (after %d: %s MB); largest growth %s MB, of "
            "which %s MB in the second half (after %d: %s MB)." % (
                g["workers"], g["last"]["requests"],
                ", ".join(num(x) for x in g["last"]["rss_mb"]),
                g["warm"]["requests"],
                ", ".join(num(x) for x in g["warm"]["rss_mb"]),
                num(g["growth_mb"]), num(g.get("late_growth_mb")),
                g.get("middle", {}).get("requests", 0),
                ", ".join(num(x) for x in
                          g.get("middle", {}).get("rss_mb", []))), ""]
    return out


def targets(results):
    """One line per target: met or missed, and by how much."""
    lines = []

    def judge(ok, text):
        lines.append("%s: %s" % ("met" if ok else "MISSED", text))

    worst = min(r["ratio"] for r in results["hit"])
    cached = [r["ratio_cached"] for r in results["hit"]
              if r.get("ratio_cached")]
    judge(worst >= 0.95, "hit ≥ 0.95× static at every concurrency "
          "(lowest %.3f%s)" % (worst, "; against a static location with "
                               "the same open_file_cache, lowest %.3f"
                               % min(cached) if cached else ""))
    worst = min(results["miss"], key=lambda r: r["miss_vs_limit"])
    judge(worst["miss_vs_limit"] >= 0.95, "miss ≥ 0.95× limit for every "
          "conversion (lowest %.2f, %s %s)" % (
              worst["miss_vs_limit"], worst["source"], worst["conversion"]))
    against = [r for r in results["miss"] if r["miss_vs_best_peer"]]
    if against:
        worst = min(against, key=lambda r: r["miss_vs_best_peer"])
        judge(worst["miss_vs_best_peer"] > 1, "miss ahead of every peer "
              "(lowest %.2f× the best peer, %s %s)" % (
                  worst["miss_vs_best_peer"], worst["source"],
                  worst["conversion"]))
    memory = results.get("memory")
    if memory:
        peak = memory["peaks"][1]["peak_rss_mb"]
        judge(peak < 150, "peak RSS under 150 MB on the 54 MP JPEG "
              "(%.1f MB)" % peak)
        growth = memory["growth"]["growth_mb"]
        judge(growth <= 2, "no growth over %d requests (%+.1f MB; %+.1f MB "
              "in the second half)" % (
                  memory["growth"]["last"]["requests"], growth,
                  memory["growth"].get("late_growth_mb", 0)))
    return lines


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(markdown(json.load(f)), end="")
