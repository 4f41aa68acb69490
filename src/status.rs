//! The status page and the ping, in php-fpm's manner.
//!
//! Both are answered by whichever worker takes the request, from the
//! scoreboard every worker shares, so they cost no round trip to the
//! master. The Nginx snippet exposes them to localhost only. Formats: plain
//! text by default, `?json`, and `?openmetrics` for Prometheus; `?full`
//! adds one block per worker.
//!
//! Hits never reach imgworker (Nginx serves them), so the page counts
//! rendered derivatives, the misses, and leaves hits to Nginx's log.

use serde_json::json;

use crate::scoreboard::{PoolView, Scoreboard, SlotView, State, now_ms};

/// What the page shows besides the scoreboard.
pub struct Extra<'a> {
    pub pool_name: &'a str,
    /// Connections waiting in the socket's queue, and the queue's size,
    /// when the kernel says.
    pub listen_queue: Option<(u32, u32)>,
}

/// An answer: content type and body.
pub struct Page {
    pub content_type: &'static str,
    pub body: String,
}

pub fn ping() -> Page {
    Page { content_type: "text/plain; charset=utf-8", body: "pong\n".into() }
}

/// Renders the status page for a query string such as `json&full`.
pub fn render(board: &Scoreboard, extra: &Extra, query: &str) -> Page {
    let flags: Vec<&str> = query
        .split('&')
        .map(|item| item.split('=').next().unwrap_or(""))
        .collect();
    let full = flags.contains(&"full");
    let pool = board.pool_view();
    let workers = board.workers();
    if flags.contains(&"json") {
        Page {
            content_type: "application/json",
            body: as_json(&pool, &workers, extra, full),
        }
    } else if flags.contains(&"openmetrics") {
        Page {
            content_type: "application/openmetrics-text; version=1.0.0; \
                           charset=utf-8",
            body: as_openmetrics(&pool, &workers, extra),
        }
    } else {
        Page {
            content_type: "text/plain; charset=utf-8",
            body: as_text(&pool, &workers, extra, full),
        }
    }
}

/// Counts of workers by state.
fn counts(workers: &[SlotView]) -> (usize, usize, usize) {
    let of = |state| workers.iter().filter(|w| w.state == state).count();
    (of(State::Idle), of(State::Busy), workers.len())
}

fn time(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    httpdate::fmt_http_date(at)
}

fn seconds_since(ms: u64) -> u64 {
    now_ms().saturating_sub(ms) / 1000
}

fn as_text(
    pool: &PoolView,
    workers: &[SlotView],
    extra: &Extra,
    full: bool,
) -> String {
    let (idle, busy, total) = counts(workers);
    let (queue, queue_len) = match extra.listen_queue {
        Some((queue, len)) => (queue.to_string(), len.to_string()),
        None => ("unknown".into(), "unknown".into()),
    };
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        out.push_str(&format!("{:<21} {value}\n", format!("{key}:")));
    };
    line("pool", extra.pool_name.to_string());
    line("start time", time(pool.started_ms));
    line("start since", seconds_since(pool.started_ms).to_string());
    line("accepted conn", pool.accepted.to_string());
    line("rendered", pool.rendered.to_string());
    line("hits", "served by nginx, not counted here".into());
    line("listen queue", queue);
    line("listen queue len", queue_len);
    line("idle processes", idle.to_string());
    line("active processes", busy.to_string());
    line("total processes", total.to_string());
    line("max active processes", pool.max_active.to_string());
    line("slow requests", pool.slow.to_string());
    line("reloads", pool.reloads.to_string());
    if full {
        for worker in workers {
            out.push_str("\n************************\n");
            let mut line = |key: &str, value: String| {
                out.push_str(&format!("{:<21} {value}\n", format!("{key}:")));
            };
            line("pid", worker.pid.to_string());
            line("state", worker.state.name().into());
            line("start time", time(worker.started_ms));
            line("start since", seconds_since(worker.started_ms).to_string());
            line("requests", worker.requests.to_string());
            line("rendered", worker.rendered.to_string());
            line("slow requests", worker.slow.to_string());
            line("last request ms", worker.last_duration_ms.to_string());
            line("generation", worker.generation.to_string());
        }
    }
    out
}

fn as_json(
    pool: &PoolView,
    workers: &[SlotView],
    extra: &Extra,
    full: bool,
) -> String {
    let (idle, busy, total) = counts(workers);
    let mut value = json!({
        "pool": extra.pool_name,
        "start time": pool.started_ms / 1000,
        "start since": seconds_since(pool.started_ms),
        "accepted conn": pool.accepted,
        "rendered": pool.rendered,
        "listen queue": extra.listen_queue.map(|q| q.0),
        "listen queue len": extra.listen_queue.map(|q| q.1),
        "idle processes": idle,
        "active processes": busy,
        "total processes": total,
        "max active processes": pool.max_active,
        "slow requests": pool.slow,
        "reloads": pool.reloads,
    });
    if full {
        value["processes"] = workers
            .iter()
            .map(|w| {
                json!({
                    "pid": w.pid,
                    "state": w.state.name(),
                    "start time": w.started_ms / 1000,
                    "start since": seconds_since(w.started_ms),
                    "requests": w.requests,
                    "rendered": w.rendered,
                    "slow requests": w.slow,
                    "last request ms": w.last_duration_ms,
                    "generation": w.generation,
                })
            })
            .collect();
    }
    let mut body = value.to_string();
    body.push('\n');
    body
}

fn as_openmetrics(
    pool: &PoolView,
    workers: &[SlotView],
    extra: &Extra,
) -> String {
    let (idle, busy, total) = counts(workers);
    let label = format!("{{pool=\"{}\"}}", extra.pool_name);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        out.push_str(&format!("# TYPE imgworker_{name} {kind}\n"));
        out.push_str(&format!("# HELP imgworker_{name} {help}\n"));
        let suffix = if kind == "counter" { "_total" } else { "" };
        out.push_str(&format!("imgworker_{name}{suffix}{label} {value}\n"));
    };
    metric(
        "accepted_connections",
        "counter",
        "Connections accepted.",
        pool.accepted.to_string(),
    );
    metric(
        "rendered",
        "counter",
        "Derivatives made (cache misses).",
        pool.rendered.to_string(),
    );
    metric(
        "slow_requests",
        "counter",
        "Requests over slow_request_ms.",
        pool.slow.to_string(),
    );
    metric(
        "reloads",
        "counter",
        "Configuration reloads.",
        pool.reloads.to_string(),
    );
    metric(
        "idle_processes",
        "gauge",
        "Workers waiting for a connection.",
        idle.to_string(),
    );
    metric(
        "active_processes",
        "gauge",
        "Workers busy with a request.",
        busy.to_string(),
    );
    metric("total_processes", "gauge", "Workers.", total.to_string());
    metric(
        "max_active_processes",
        "gauge",
        "Most workers busy at once.",
        pool.max_active.to_string(),
    );
    metric(
        "start_time_seconds",
        "gauge",
        "When the pool started.",
        (pool.started_ms / 1000).to_string(),
    );
    if let Some((queue, len)) = extra.listen_queue {
        metric(
            "listen_queue",
            "gauge",
            "Connections waiting for a worker.",
            queue.to_string(),
        );
        metric(
            "listen_queue_len",
            "gauge",
            "Size of the listen queue.",
            len.to_string(),
        );
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_with_two_requests() -> Scoreboard {
        let board = Scoreboard::create().unwrap();
        board.claim(0, 1);
        board.ready(0, 100);
        board.begin_request(0);
        board.end_request(0, 5, true, false);
        board.begin_request(0);
        board.end_request(0, 2000, false, true);
        board
    }

    const EXTRA: Extra =
        Extra { pool_name: "www", listen_queue: Some((0, 128)) };

    #[test]
    fn plain_text_lists_the_pool_counts() {
        let page = render(&board_with_two_requests(), &EXTRA, "");
        assert!(
            page.body.contains("pool:                 www\n"),
            "{}",
            page.body
        );
        assert!(page.body.contains("accepted conn:        2\n"));
        assert!(page.body.contains("rendered:             1\n"));
        assert!(page.body.contains("slow requests:        1\n"));
        assert!(page.body.contains("idle processes:       1\n"));
        assert!(page.body.contains("listen queue len:     128\n"));
        assert!(!page.body.contains("pid:"));
    }

    #[test]
    fn full_adds_a_block_per_worker() {
        let page = render(&board_with_two_requests(), &EXTRA, "full");
        assert!(
            page.body.contains("pid:                  100\n"),
            "{}",
            page.body
        );
        assert!(page.body.contains("last request ms:      2000\n"));
    }

    #[test]
    fn json_is_json() {
        let page = render(&board_with_two_requests(), &EXTRA, "json&full");
        let value: serde_json::Value =
            serde_json::from_str(&page.body).unwrap();
        assert_eq!(value["accepted conn"], 2);
        assert_eq!(value["processes"][0]["pid"], 100);
    }

    #[test]
    fn openmetrics_ends_with_eof() {
        let page = render(&board_with_two_requests(), &EXTRA, "openmetrics");
        assert!(page.body.contains(
            "imgworker_accepted_connections_total{pool=\"www\"} 2\n"
        ));
        assert!(page.body.ends_with("# EOF\n"));
    }
}
