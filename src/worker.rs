//! A worker process: starts libvips, then accepts connections one at a
//! time and answers each, until told to stop.
//!
//! Workers share the master's listening socket and each waits in poll(2)
//! for a connection; the kernel hands each connection to one of them. A
//! worker renders exactly one request at a time, so a slow render holds
//! one worker, never the others. On SIGTERM or SIGINT a worker finishes
//! the request in hand, then exits 0. On SIGQUIT it then also serves the
//! connections already waiting in the socket's queue, taking them without
//! waiting for more (accept until it would block): the master sends QUIT
//! only once it has removed the socket's path, so that no new connection
//! can join the queue, and what is queued would otherwise be dropped.
//!
//! A new derivative is answered only once its file is flushed to disk and
//! in place, and the flush is mostly waiting for the disk. A few threads
//! of the worker, the finishers, do that last step and send the answers,
//! while the main thread goes on to the next connection: the processor
//! renders while the disk writes, and flushes made together share the
//! file system's journal commit. A main thread with an answer ready and
//! every finisher busy waits for one.

use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::sys::signal::Signal;

use crate::cache::Cache;
use crate::config::Config;
use crate::fastcgi;
use crate::request::{self, Context};
use crate::scoreboard::Scoreboard;
use crate::signing::Signer;
use crate::source::LocalSource;
use crate::sys::{self, SignalPipe};
use crate::transform::{Rules, Settings};
use crate::vips;

/// Threads that flush new derivatives and send their answers: enough for
/// a flush to wait on the disk while the next renders finish.
const FINISHERS: usize = 3;

/// Exit status of a worker that could not start: the master stops rather
/// than respawn a worker that will fail the same way.
pub const EXIT_BOOT_FAILED: i32 = 3;

/// Signals that stop a worker after its current request; QUIT after the
/// queue's too.
const STOP_SIGNALS: [Signal; 3] =
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT];

/// Runs a worker in a freshly forked child; never returns.
pub fn run(
    listener: &UnixListener,
    config: &Config,
    board: Scoreboard,
    slot: usize,
) -> ! {
    let pid = std::process::id();
    let signals = match boot_signals() {
        Ok(signals) => signals,
        Err(err) => boot_failed(slot, &format!("signal setup failed: {err}")),
    };
    let ctx = match boot(config, board, listener) {
        Ok(ctx) => ctx,
        Err(reason) => boot_failed(slot, &reason),
    };
    board.ready(slot, pid);
    info!("worker started pid={pid} slot={slot} vips={}", vips::version());

    let limits = fastcgi::Limits::default();
    let finisher = Finisher::start();
    let retire_after = with_jitter(config.max_requests, pid);
    let serve = |stream| {
        board.begin_request(slot);
        let started = Instant::now();
        let rendered =
            serve_connection(&ctx, slot, stream, &limits, &finisher);
        let ms = started.elapsed().as_millis() as u64;
        board.end_request(slot, ms, rendered, ms >= config.slow_request_ms);
    };
    let mut served: u64 = 0;
    let mut reason = "signal";
    let mut quit = false;
    loop {
        let stop = signals.drain();
        if !stop.is_empty() {
            quit = stop.iter().all(|&signal| signal == Signal::SIGQUIT);
            break;
        }
        if retire_after > 0 && served >= retire_after {
            reason = "max_requests";
            break;
        }
        let ready = match sys::wait_readable(
            &[listener.as_fd(), signals.fd()],
            Duration::from_secs(1),
        ) {
            Ok(ready) => ready,
            Err(err) => {
                error!("worker poll failed pid={pid} error={err:?}");
                std::process::exit(1);
            }
        };
        board.beat(slot);
        // A signal first: a worker told to stop takes no connection
        // before it knows how.
        if ready[1] || !ready[0] {
            continue;
        }
        // The listener is non-blocking: another worker may have taken the
        // connection first.
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                continue;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {
                continue;
            }
            Err(err) => {
                warn!("accept failed pid={pid} error={err:?}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        serve(stream);
        served += 1;
        // Checked after a request, so a worker over the limit from the
        // start still serves between restarts instead of spinning.
        if config.max_rss_mb > 0
            && sys::resident_bytes() > config.max_rss_mb << 20
        {
            reason = "max_rss_mb";
            break;
        }
    }

    // After QUIT, the connections queued before the socket's path went
    // (see the module comment), until accept would block: the queue is
    // empty. TERM or INT meanwhile ends it after the request in hand.
    let mut queued: u64 = 0;
    while quit {
        match listener.accept() {
            Ok((stream, _)) => {
                serve(stream);
                queued += 1;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(err) => {
                warn!("accept failed pid={pid} error={err:?}");
                break;
            }
        }
        quit = signals.drain().iter().all(|&signal| signal == Signal::SIGQUIT);
    }
    finisher.stop();
    info!(
        "worker stopping pid={pid} slot={slot} requests={} \
         queued={queued} reason={reason} rss_mb={}",
        served + queued,
        sys::resident_bytes() >> 20
    );
    std::process::exit(0);
}

/// `max_requests` give or take up to 10 %, drawn from the pid, so workers
/// started together do not all retire at once.
fn with_jitter(max_requests: u64, pid: u32) -> u64 {
    if max_requests == 0 {
        return 0;
    }
    let spread = max_requests / 10;
    if spread == 0 {
        return max_requests;
    }
    // A multiplicative hash spreads consecutive pids over the range.
    let draw = (pid as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    max_requests - spread + draw % (2 * spread + 1)
}

/// Reads one request from a connection and answers it, or hands the
/// answer to the finisher. Any protocol fault drops the connection with
/// one log line. True if a derivative was made.
fn serve_connection(
    ctx: &Context,
    slot: usize,
    stream: UnixStream,
    limits: &fastcgi::Limits,
    finisher: &Finisher,
) -> bool {
    let mut conn = match fastcgi::Connection::new(stream, limits) {
        Ok(conn) => conn,
        Err(err) => {
            warn!("connection setup failed error={err:?}");
            return false;
        }
    };
    let req = match conn.read_request() {
        Ok(Some(req)) => req,
        Ok(None) => {
            debug!("connection closed before a request");
            return false;
        }
        Err(err) => {
            warn!("connection dropped reason={:?}", err.to_string());
            return false;
        }
    };
    if let Some(uri) = req.param("REQUEST_URI") {
        ctx.board.set_uri(slot, uri);
    }
    let answer = request::answer(ctx, &req);
    let rendered = answer.rendered;
    if answer.pending() {
        // Still in hand while a finisher flushes and answers it.
        let in_hand = ctx.board.commit_uri(slot).map(|cell| InHand {
            board: ctx.board,
            slot,
            cell,
        });
        finisher.hand_over(Delivery { conn, req, answer, _in_hand: in_hand });
    } else {
        Delivery { conn, req, answer, _in_hand: None }.send();
    }
    rendered
}

/// An answer and where it goes.
struct Delivery {
    conn: fastcgi::Connection,
    req: fastcgi::Request,
    answer: request::Answer,
    /// Its URI's cell in the scoreboard while a finisher has it.
    _in_hand: Option<InHand>,
}

/// A request's URI held in the scoreboard until the request is answered
/// (or its thread unwinds), so that a worker killed meanwhile is known
/// to have lost it.
struct InHand {
    board: Scoreboard,
    slot: usize,
    cell: usize,
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.board.committed(self.slot, self.cell);
    }
}

// Every request a finisher has, or waits to be given, can be named.
const _: () = assert!(FINISHERS < crate::scoreboard::COMMITTING);

impl Delivery {
    /// Finishes the answer, writes it and logs it; the connection closes.
    fn send(self) {
        let Delivery { mut conn, req, answer, _in_hand } = self;
        let answer = request::finish(answer);
        let outcome = conn.write_response(
            &req,
            answer.status,
            &answer.header_pairs(),
            &answer.body,
        );
        match outcome {
            Ok(()) if answer.status >= 500 => {
                error!("request {}", answer.summary())
            }
            Ok(()) if answer.unstored => warn!("request {}", answer.summary()),
            Ok(()) => info!("request {}", answer.summary()),
            Err(err) => warn!(
                "request {} not delivered error={:?}",
                answer.summary(),
                err.to_string()
            ),
        }
    }
}

/// The threads that commit new derivatives and send their answers (see
/// the module comment).
struct Finisher {
    queue: Option<crossbeam_channel::Sender<Delivery>>,
    threads: Vec<JoinHandle<()>>,
}

impl Finisher {
    /// Starts the threads; without any, answers are finished in line.
    fn start() -> Finisher {
        // No buffer: an answer is handed over only to an idle finisher.
        let (queue, deliveries) = crossbeam_channel::bounded::<Delivery>(0);
        let mut threads = Vec::new();
        for n in 0..FINISHERS {
            let deliveries = deliveries.clone();
            let thread = std::thread::Builder::new()
                .name(format!("finisher-{n}"))
                .spawn(move || deliveries.iter().for_each(Delivery::send));
            match thread {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    warn!("finisher thread did not start error={err:?}");
                    break;
                }
            }
        }
        let queue = (!threads.is_empty()).then_some(queue);
        Finisher { queue, threads }
    }

    /// Gives `delivery` to an idle finisher, waiting while all are busy;
    /// finishes it here if they are gone.
    fn hand_over(&self, delivery: Delivery) {
        let unsent = match &self.queue {
            Some(queue) => queue.send(delivery).err().map(|err| err.0),
            None => Some(delivery),
        };
        if let Some(delivery) = unsent {
            delivery.send();
        }
    }

    /// Waits until the answers in hand are sent.
    fn stop(mut self) {
        drop(self.queue.take());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                error!("finisher thread panicked");
            }
        }
    }
}

fn boot_signals() -> std::io::Result<SignalPipe> {
    sys::reset_signals(&[Signal::SIGCHLD, Signal::SIGHUP]);
    sys::die_with_parent(Signal::SIGTERM)?;
    SignalPipe::install(&STOP_SIGNALS)
}

/// Starts libvips and opens the roots; any failure is a boot failure.
fn boot(
    config: &Config,
    board: Scoreboard,
    listener: &UnixListener,
) -> Result<Context, String> {
    vips::start(config.vips_concurrency)
        .map_err(|err| format!("libvips did not start: {err}"))?;
    if config.input_formats.iter().any(|f| f == "svg") {
        vips::allow_operation("VipsForeignLoadSvg");
    }
    let source =
        LocalSource::open(&config.source_root, config.max_source_bytes)
            .map_err(|err| format!("source_root: {err}"))?;
    let cache_root = &config.cache_root;
    std::fs::create_dir_all(cache_root)
        .and_then(|()| probe_writable(cache_root))
        .map_err(|err| {
            format!("cache_root: {}: {err}", cache_root.display())
        })?;
    Ok(Context {
        source: Box::new(source),
        cache: Cache::new(cache_root, config.cache_fsync),
        settings: Settings::from_config(config),
        rules: Rules::from_config(config),
        board,
        pool_name: config.pool_name.clone(),
        signer: Signer::new(&config.signing_keys),
        glide_sign_key: config.glide_sign_key.clone(),
        listener: listener.try_clone().ok(),
    })
}

/// Fails unless this process may create files in `dir`.
fn probe_writable(dir: &std::path::Path) -> std::io::Result<()> {
    match sys::create_unnamed(dir) {
        Ok(_) => Ok(()),
        Err(err) if sys::unnamed_unsupported(&err) => {
            let probe =
                dir.join(format!(".imgworker-probe.{}", std::process::id()));
            std::fs::write(&probe, b"")?;
            std::fs::remove_file(&probe)
        }
        Err(err) => Err(err),
    }
}

fn boot_failed(slot: usize, reason: &str) -> ! {
    error!(
        "worker boot failed pid={} slot={slot} reason={reason:?}",
        std::process::id()
    );
    std::process::exit(EXIT_BOOT_FAILED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retirement_is_spread_around_max_requests() {
        let draws: Vec<u64> =
            (1000..1100).map(|pid| with_jitter(1000, pid)).collect();
        assert!(draws.iter().all(|d| (900..=1100).contains(d)));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 50, "pids spread out: {}", distinct.len());
        assert_eq!(with_jitter(0, 1234), 0, "0 means never");
        assert_eq!(with_jitter(5, 1234), 5, "too few to spread");
    }
}
