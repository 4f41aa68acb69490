//! The master process: owns the listening socket and the scoreboard, forks
//! the workers and keeps their number up, reloads and stops them.
//!
//! The master never starts libvips or any thread, so `fork` is safe. Its
//! loop, once per signal or second: reap exited workers, act on signals,
//! retire the previous generation once the new one is ready, kill workers
//! stuck on one request, start missing workers, tell systemd how the pool
//! is doing.
//!
//! A worker that dies is replaced; one that dies before it is ready to
//! serve is replaced after a growing delay (0.1 s, doubling, at most
//! 10 s). If
//! workers keep dying at start-up, or one reports that it cannot start at
//! all, the master stops the pool and exits with an error instead of
//! looping; after a reload it goes back to the previous workers instead.
//!
//! Signals, with nginx's meanings (see SIGNALS.md): HUP reloads the
//! configuration and replaces the workers without dropping a request;
//! QUIT stops gracefully; TERM and INT stop fast; USR1 asks to reopen log
//! files.
//!
//! A stop removes the socket's path first, so new connections fail at
//! once. A graceful stop then sends the workers QUIT, and they serve the
//! connections already queued before they exit; a fast stop sends TERM,
//! and the queue is dropped with the socket. A socket systemd passed is
//! never removed, and its queue waits for the next start: the workers get
//! TERM. Retiring workers after a reload get TERM too, since the queue is
//! the new workers' to serve.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use log::{error, info, warn};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::config::Config;
use crate::listener::Listener;
use crate::scoreboard::{self, Scoreboard, State};
use crate::sys::{self, Forked, SignalPipe};
use crate::{logging, worker};

/// Start-up failures in a row before the master gives up.
const MAX_EARLY_DEATHS: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a fast stop (TERM, INT) waits for requests in flight.
const FAST_STOP: Duration = Duration::from_secs(5);

const MASTER_SIGNALS: [Signal; 6] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
];

/// Where the configuration comes from, so a reload can read it again:
/// the file, then the command-line flags on top.
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    pub apply_flags: Box<ApplyFlags>,
}

/// Puts the command-line flags over a configuration read from the file.
pub type ApplyFlags = dyn Fn(&mut Config) -> anyhow::Result<()>;

impl ConfigSource {
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.file {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        (self.apply_flags)(&mut config)?;
        // As check-config says it: the file first, where there is one.
        let within = |reason: String| match &self.file {
            Some(path) => anyhow::anyhow!("{}: {reason}", path.display()),
            None => anyhow::Error::msg(reason),
        };
        config.check().map_err(within)?;
        config.check_paths().map_err(within)?;
        Ok(config)
    }
}

/// One live worker process.
struct Worker {
    pid: Pid,
    slot: usize,
    generation: u64,
    started: Instant,
    /// Told to stop after its request; not to be replaced.
    retiring: bool,
}

/// How the pool is to stop.
enum Stop {
    Graceful,
    Fast,
}

struct Master {
    config: Config,
    source: ConfigSource,
    /// The configuration and generation before the last reload, while the
    /// new generation is still starting.
    previous: Option<(Config, u64)>,
    listener: Listener,
    signals: SignalPipe,
    board: Scoreboard,
    workers: Vec<Worker>,
    generation: u64,
    early_deaths: u32,
    respawn_at: Instant,
    announced_ready: bool,
    last_status: String,
    watchdog: Option<Duration>,
    last_watchdog: Instant,
}

/// One line for one request a worker took with it: Nginx answered that
/// client 503.
fn lost(worker: &Worker, uri: &str, why: &str) {
    error!(
        "request lost pid={} slot={} uri={uri:?}; {why}",
        worker.pid, worker.slot
    );
}

/// Runs the pool until it is told to stop; an error if it had to give up.
pub fn run(source: ConfigSource) -> anyhow::Result<()> {
    let config = source.load()?;
    if let Some(level) = config.log_level() {
        logging::set_level(level);
    }
    let mode = config.socket_mode_bits().map_err(anyhow::Error::msg)?;
    let listener = Listener::open(&config.socket, mode, config.listen_backlog)
        .context("cannot open the listening socket")?;
    let signals = SignalPipe::install(&MASTER_SIGNALS)
        .context("cannot install signal handlers")?;
    let board = Scoreboard::create().context("cannot map the scoreboard")?;
    let mut master = Master {
        config,
        source,
        previous: None,
        listener,
        signals,
        board,
        workers: Vec::new(),
        generation: 1,
        early_deaths: 0,
        respawn_at: Instant::now(),
        announced_ready: false,
        last_status: String::new(),
        watchdog: sys::systemd_watchdog(),
        last_watchdog: Instant::now(),
    };
    info!(
        "master started pid={} workers={} socket={} inherited={}",
        std::process::id(),
        master.config.worker_count(),
        master.config.socket.display(),
        master.listener.inherited()
    );
    let result = master.supervise();
    sys::notify_systemd("STOPPING=1");
    // New connections fail at once (Nginx answers 503) instead of
    // queueing for workers that are leaving.
    master.listener.remove();
    let timeout = Duration::from_secs(master.config.shutdown_timeout_s);
    let lost = match &result {
        // Only once nothing new can join the queue may the workers empty
        // it; a socket systemd owns keeps its queue for the next start.
        Ok(Stop::Graceful) if !master.listener.inherited() => {
            master.stop_workers(timeout, Signal::SIGQUIT)
        }
        Ok(Stop::Graceful) => master.stop_workers(timeout, Signal::SIGTERM),
        _ => master.stop_workers(FAST_STOP.min(timeout), Signal::SIGTERM),
    };
    master.report_stopped(lost);
    result.map(|_| ())
}

impl Master {
    fn supervise(&mut self) -> anyhow::Result<Stop> {
        loop {
            self.reap_workers()?;
            for signal in self.signals.drain() {
                match signal {
                    Signal::SIGHUP => self.reload(),
                    Signal::SIGUSR1 => info!(
                        "log reopen requested; logs go to standard error, \
                         nothing to reopen"
                    ),
                    Signal::SIGQUIT => {
                        info!(
                            "master stopping signal=SIGQUIT mode=graceful \
                             queued={}",
                            self.queued_text()
                        );
                        return Ok(Stop::Graceful);
                    }
                    Signal::SIGTERM | Signal::SIGINT => {
                        info!(
                            "master stopping signal={signal} mode=fast \
                             queued={}",
                            self.queued_text()
                        );
                        return Ok(Stop::Fast);
                    }
                    _ => {}
                }
            }
            self.retire_previous_generation();
            self.kill_stuck_workers();
            self.spawn_missing_workers()?;
            self.report_to_systemd();
            let wait = self.next_wake();
            sys::wait_readable(&[self.signals.fd()], wait)
                .context("poll on the signal pipe")?;
        }
    }

    /// Re-reads the configuration; on success, starts a new generation of
    /// workers, and the old one is retired once the new one is ready. A
    /// configuration that does not load changes nothing.
    fn reload(&mut self) {
        sys::notify_systemd("RELOADING=1");
        let config = match self.source.load() {
            Ok(config) => config,
            Err(err) => {
                error!("reload failed, keeping the running workers: {err:#}");
                sys::notify_systemd("READY=1");
                return;
            }
        };
        // Against the socket as bound, not the last file: a setting put
        // back is no change. systemd's socket ignores both settings.
        if let Some((path, backlog)) = self.listener.bound() {
            if config.socket != path {
                warn!(
                    "reload cannot move the socket to {}; restart to do that",
                    config.socket.display()
                );
            }
            if config.listen_backlog != backlog {
                warn!(
                    "reload cannot change listen_backlog; restart to do that"
                );
            }
        }
        if let Some(level) = config.log_level() {
            logging::set_level(level);
        }
        let old = std::mem::replace(&mut self.config, config);
        self.previous = Some((old, self.generation));
        self.generation += 1;
        self.early_deaths = 0;
        self.respawn_at = Instant::now();
        self.announced_ready = false;
        self.board.count_reload();
        info!(
            "reloading generation={} workers={}",
            self.generation,
            self.config.worker_count()
        );
    }

    /// Once every worker of the current generation is ready, asks the
    /// older ones to finish their request and exit.
    fn retire_previous_generation(&mut self) {
        if !self.current_generation_ready() {
            return;
        }
        let mut retired = 0;
        for worker in &mut self.workers {
            if worker.generation < self.generation && !worker.retiring {
                worker.retiring = true;
                // TERM, not QUIT: the socket stays open and the new
                // workers serve its queue.
                let _ = kill(worker.pid, Signal::SIGTERM);
                retired += 1;
            }
        }
        if retired > 0 {
            info!(
                "reloaded generation={} retiring={retired}",
                self.generation
            );
        }
        self.previous = None;
    }

    fn current_generation_ready(&self) -> bool {
        let current: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.generation == self.generation)
            .collect();
        current.len() >= self.config.worker_count()
            && current
                .iter()
                .all(|w| self.board.state(w.slot) != State::Starting)
    }

    /// Kills workers busy with one request for longer than
    /// `request_time_limit_s`: a decoder that hangs must not hold a slot.
    fn kill_stuck_workers(&mut self) {
        let limit_ms = self.config.request_time_limit_s * 1000;
        let now = scoreboard::now_ms();
        for worker in &self.workers {
            let view = self.board.view(worker.slot);
            if view.state == State::Busy
                && view.busy_since_ms > 0
                && now.saturating_sub(view.busy_since_ms) > limit_ms
            {
                error!(
                    "worker stuck pid={} slot={} busy_ms={} limit_s={} \
                     uri={:?}; killing",
                    worker.pid,
                    worker.slot,
                    now - view.busy_since_ms,
                    self.config.request_time_limit_s,
                    self.board.uri(worker.slot).unwrap_or_default()
                );
                let _ = kill(worker.pid, Signal::SIGKILL);
            }
        }
    }

    /// How long the loop may sleep: until the next delayed respawn, or a
    /// second at most.
    fn next_wake(&self) -> Duration {
        let second = Duration::from_secs(1);
        // Workers starting up: look again soon, to say READY without delay.
        if !self.announced_ready {
            return Duration::from_millis(50);
        }
        if self.live_current() < self.config.worker_count() {
            return self
                .respawn_at
                .saturating_duration_since(Instant::now())
                .min(second);
        }
        second
    }

    fn live_current(&self) -> usize {
        self.workers.iter().filter(|w| w.generation == self.generation).count()
    }

    /// Collects every exited worker (waitpid(2) with WNOHANG), logs how it
    /// ended and schedules its replacement.
    fn reap_workers(&mut self) -> anyhow::Result<()> {
        loop {
            let flags = Some(WaitPidFlag::WNOHANG);
            let status = match waitpid(Pid::from_raw(-1), flags) {
                Ok(WaitStatus::StillAlive)
                | Err(nix::errno::Errno::ECHILD) => {
                    return Ok(());
                }
                Ok(status) => status,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(err) => return Err(err).context("waitpid"),
            };
            let Some(pid) = status.pid() else { continue };
            let Some(index) = self.workers.iter().position(|w| w.pid == pid)
            else {
                continue;
            };
            let worker = self.workers.remove(index);
            // A worker that reached its accept loop has published its pid.
            let was_ready = self.board.view(worker.slot).pid != 0;
            let in_hand = self.board.uris_in_hand(worker.slot);
            self.board.release(worker.slot);
            self.after_exit(&worker, status, was_ready, in_hand)?;
        }
    }

    fn after_exit(
        &mut self,
        worker: &Worker,
        status: WaitStatus,
        was_ready: bool,
        in_hand: Vec<String>,
    ) -> anyhow::Result<()> {
        let uptime = worker.started.elapsed();
        let fields = format!(
            "pid={} slot={} uptime_s={}",
            worker.pid,
            worker.slot,
            uptime.as_secs()
        );
        match status {
            WaitStatus::Exited(_, worker::EXIT_BOOT_FAILED) => {
                return self.boot_failed(worker, &fields);
            }
            WaitStatus::Exited(_, 0) => {
                info!("worker exited {fields} status=0")
            }
            WaitStatus::Exited(_, code) => {
                warn!("worker exited {fields} status={code}")
            }
            WaitStatus::Signaled(_, signal, _) => {
                error!("worker killed {fields} signal={signal}")
            }
            _ => {}
        }
        // The requests it died with: those clients had a 503 from Nginx.
        for uri in &in_hand {
            lost(worker, uri, "its worker died");
        }
        if worker.retiring || worker.generation != self.generation {
            return Ok(());
        }
        // Only a worker that died before it was ready failed to start; one
        // killed while serving (a crash in a decoder, the OOM killer) is
        // replaced at once, however young.
        if !was_ready {
            self.early_deaths += 1;
            if self.early_deaths >= MAX_EARLY_DEATHS {
                error!(
                    "workers keep dying at start-up deaths={}; master giving up",
                    self.early_deaths
                );
                bail!("workers keep dying at start-up");
            }
            let backoff =
                Duration::from_millis(100) * 2u32.pow(self.early_deaths - 1);
            self.respawn_at = Instant::now() + backoff.min(MAX_BACKOFF);
        } else {
            self.early_deaths = 0;
        }
        Ok(())
    }

    /// A worker could not start. After a reload, the previous workers are
    /// still there: keep them and the previous configuration. Otherwise
    /// there is nothing to serve with: give up.
    fn boot_failed(
        &mut self,
        worker: &Worker,
        fields: &str,
    ) -> anyhow::Result<()> {
        if worker.generation != self.generation {
            return Ok(());
        }
        if let Some((config, generation)) = self.previous.take() {
            error!(
                "worker boot failed {fields}; keeping the workers of \
                 generation={generation}"
            );
            for new in
                self.workers.iter().filter(|w| w.generation == self.generation)
            {
                let _ = kill(new.pid, Signal::SIGKILL);
            }
            self.config = config;
            self.generation = generation;
            self.announced_ready = false;
            return Ok(());
        }
        error!("worker boot failed {fields}; master giving up");
        bail!("a worker could not start; see the \"worker boot failed\" line");
    }

    fn spawn_missing_workers(&mut self) -> anyhow::Result<()> {
        while self.live_current() < self.config.worker_count()
            && self.respawn_at <= Instant::now()
        {
            self.spawn_worker()?;
        }
        Ok(())
    }

    fn spawn_worker(&mut self) -> anyhow::Result<()> {
        let taken: Vec<usize> = self.workers.iter().map(|w| w.slot).collect();
        let Some(slot) = self.board.free_slot(|i| taken.contains(&i)) else {
            bail!("no free scoreboard slot; too many workers");
        };
        self.board.claim(slot, self.generation);
        match sys::fork().context("fork() failed")? {
            Forked::Child => worker::run(
                &self.listener.socket,
                &self.config,
                self.board,
                slot,
            ),
            Forked::Parent(pid) => {
                self.workers.push(Worker {
                    pid,
                    slot,
                    generation: self.generation,
                    started: Instant::now(),
                    retiring: false,
                });
                Ok(())
            }
        }
    }

    /// READY=1 once the workers are up, STATUS= when the counts change,
    /// and the watchdog's keep-alive.
    fn report_to_systemd(&mut self) {
        let views = self.board.workers();
        let idle = views.iter().filter(|v| v.state == State::Idle).count();
        let busy = views.iter().filter(|v| v.state == State::Busy).count();
        let starting =
            views.iter().filter(|v| v.state == State::Starting).count();
        let pool = self.board.pool_view();
        let status = format!(
            "workers: {idle} idle, {busy} busy, {starting} starting; \
             requests: {}",
            pool.accepted
        );
        if !self.announced_ready && self.current_generation_ready() {
            self.announced_ready = true;
            info!(
                "pool ready generation={} workers={}",
                self.generation,
                self.config.worker_count()
            );
            sys::notify_systemd(&format!("READY=1\nSTATUS={status}"));
            self.last_status = status;
        } else if status != self.last_status {
            sys::notify_systemd(&format!("STATUS={status}"));
            self.last_status = status;
        }
        if let Some(interval) = self.watchdog
            && self.last_watchdog.elapsed() >= interval / 2
        {
            sys::notify_systemd("WATCHDOG=1");
            self.last_watchdog = Instant::now();
        }
    }

    /// Connections waiting in the socket's queue, as the kernel counts
    /// them; `None` if it does not say (see KNOWN_ISSUES.md).
    fn queued(&self) -> Option<u32> {
        sys::listen_queue(&self.listener.socket).map(|(queued, _)| queued)
    }

    fn queued_text(&self) -> String {
        self.queued().map_or("unknown".into(), |n| n.to_string())
    }

    /// The last line: how many requests in hand the stop killed (`lost`)
    /// and, if connections are still queued, what becomes of them, so that
    /// none is lost without a word.
    fn report_stopped(&self, lost: usize) {
        let pid = std::process::id();
        match self.queued() {
            Some(left) if left > 0 && !self.listener.inherited() => warn!(
                "master stopped pid={pid} lost={lost} dropped={left}; \
                 connections still queued close with the socket (Nginx \
                 answers 503)"
            ),
            Some(left) if left > 0 => info!(
                "master stopped pid={pid} lost={lost} queued={left}; they \
                 wait in systemd's socket for the next start"
            ),
            _ if lost > 0 => warn!(
                "master stopped pid={pid} lost={lost}; requests in hand \
                 were killed at the stop's deadline (Nginx answers 503)"
            ),
            _ => info!("master stopped pid={pid}"),
        }
    }

    /// Sends every worker `signal` (TERM: stop after the request in hand;
    /// QUIT: and after the queue), waits up to `wait`, then kills the
    /// rest; how many requests in hand were lost with them.
    fn stop_workers(&mut self, wait: Duration, signal: Signal) -> usize {
        let mut count = 0;
        self.signal_workers(signal);
        let deadline = Instant::now() + wait;
        while !self.workers.is_empty() && Instant::now() < deadline {
            self.reap_quietly();
            let _ = sys::wait_readable(
                &[self.signals.fd()],
                Duration::from_millis(50),
            );
            self.signals.drain();
        }
        if !self.workers.is_empty() {
            error!(
                "workers still busy after {} s; killing {}",
                wait.as_secs(),
                self.workers.len()
            );
            // Each request in hand is lost: say which, as the death of a
            // worker does.
            for worker in &self.workers {
                for uri in self.board.uris_in_hand(worker.slot) {
                    lost(
                        worker,
                        &uri,
                        "its worker was killed at the stop's \
                                        deadline",
                    );
                    count += 1;
                }
            }
            self.signal_workers(Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.workers.is_empty() && Instant::now() < deadline {
                self.reap_quietly();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        count
    }

    /// Reaps without replacing: used while stopping.
    fn reap_quietly(&mut self) {
        while let Ok(status) =
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
        {
            let Some(pid) = status.pid() else { return };
            if let Some(index) = self.workers.iter().position(|w| w.pid == pid)
            {
                let worker = self.workers.remove(index);
                self.board.release(worker.slot);
            }
        }
    }

    fn signal_workers(&self, signal: Signal) {
        for worker in &self.workers {
            let _ = kill(worker.pid, signal);
        }
    }
}
