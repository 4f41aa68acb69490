//! The ceiling for a miss: imgworker's own pipeline in a tight loop, with
//! no Nginx, no FastCGI, no cache tree.
//!
//! `scripts/bench` runs this beside the real miss path so that the gap
//! between the two is the cost of everything that is not rendering. Each
//! process starts libvips the way a worker does, reads the original once,
//! and calls `transform::render` with the worker's default settings until
//! its time is up. Several processes run side by side, one per worker, as
//! the pool does.
//!
//! ```text
//! limit --processes N --seconds S --options w_300,f_webp [--accept A] FILE
//! ```
//!
//! It prints one JSON line: images per second over all processes, the
//! median and 99th percentile of one render, and the CPU time spent per
//! image (all threads, from /proc), in milliseconds.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imgworker::config::Config;
use imgworker::transform::{Options, Settings, render};
use imgworker::vips;

/// Set in the environment of the processes that do the rendering.
const CHILD: &str = "IMGWORKER_LIMIT_CHILD";

struct Args {
    processes: usize,
    seconds: f64,
    options: String,
    accept: String,
    file: String,
}

fn main() {
    let args = parse_args().unwrap_or_else(|err| {
        eprintln!("limit: {err}");
        eprintln!(
            "usage: limit --processes N --seconds S --options SEGMENT \
             [--accept A] FILE"
        );
        std::process::exit(2);
    });
    if std::env::var_os(CHILD).is_some() {
        render_loop(&args);
    } else {
        run_children(&args);
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        processes: 1,
        seconds: 5.0,
        options: String::new(),
        accept: String::new(),
        file: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--processes" => {
                args.processes = value()?.parse().map_err(|_| "--processes")?
            }
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|_| "--seconds")?
            }
            "--options" => args.options = value()?,
            "--accept" => args.accept = value()?,
            _ if arg.starts_with("--") => {
                return Err(format!("{arg}: unknown flag"));
            }
            _ => args.file = arg,
        }
    }
    if args.file.is_empty() || args.options.is_empty() {
        return Err("--options and FILE are required".into());
    }
    Ok(args)
}

/// Starts the rendering processes together and sums what they report.
fn run_children(args: &Args) {
    let exe = std::env::current_exe().expect("the path of this program");
    let children: Vec<_> = (0..args.processes)
        .map(|_| {
            Command::new(&exe)
                .args(std::env::args().skip(1))
                .env(CHILD, "1")
                .stdout(Stdio::piped())
                .spawn()
                .expect("a rendering process starts")
        })
        .collect();

    let mut per_second = 0.0;
    let mut cpu_ms = 0.0;
    let mut times = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("a rendering process ends");
        if !out.status.success() {
            eprintln!("limit: a rendering process failed: {}", out.status);
            std::process::exit(1);
        }
        // First line: images, seconds and CPU ms; second: each render's
        // ms.
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let head: Vec<f64> = numbers(lines.next().unwrap_or(""));
        if let [images, seconds, cpu] = head[..] {
            per_second += images / seconds;
            cpu_ms += cpu;
        }
        times.extend(numbers(lines.next().unwrap_or("")));
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"images\": {}, \"per_s\": {per_second:.2}, \"p50_ms\": {:.2}, \
         \"p99_ms\": {:.2}, \"cpu_ms\": {:.2}}}",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        cpu_ms / times.len().max(1) as f64
    );
}

/// One process: the worker's start-up, then renders until time is up.
fn render_loop(args: &Args) {
    let config = Config::default();
    vips::start(config.vips_concurrency).expect("libvips starts");
    let settings = Settings::from_config(&config);
    let options = Options::parse(&args.options, config.max_output_side)
        .expect("the options parse");
    let bytes = std::fs::read(&args.file).expect("the original is readable");
    let once = || {
        render(&bytes, &options, &args.accept, &settings)
            .expect("the original renders")
    };

    // One untimed render, as a worker has served requests before.
    once();
    let budget = Duration::from_secs_f64(args.seconds);
    let cpu_before = cpu_time_ms();
    let started = Instant::now();
    let mut times = Vec::new();
    while started.elapsed() < budget {
        let one = Instant::now();
        once();
        times.push(one.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time_ms() - cpu_before;
    println!("{} {elapsed} {cpu}", times.len());
    let times: Vec<String> = times.iter().map(|t| format!("{t:.3}")).collect();
    println!("{}", times.join(" "));
}

/// This process's CPU time so far, user and system, every thread: fields
/// 14 and 15 of /proc/self/stat (proc(5)), in clock ticks of 10 ms, the
/// value of `_SC_CLK_TCK` on Linux.
fn cpu_time_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name, in parentheses, may hold spaces: count after it.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| numbers(rest))
        .unwrap_or_default();
    // After the name: state (not a number, skipped), then field 4 on.
    match fields.get(10..12) {
        Some([user, system]) => (user + system) * 10.0,
        _ => 0.0,
    }
}

fn numbers(line: &str) -> Vec<f64> {
    line.split_whitespace().filter_map(|n| n.parse().ok()).collect()
}

/// The `p` quantile of sorted values (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
