//! The master process: owns the listening socket, forks the workers and
//! keeps their number up, and stops them on request.
//!
//! The master never starts libvips or any thread, so `fork` is safe. Its
//! loop, once per signal or second: reap exited workers, act on signals,
//! start missing workers. A worker that dies is replaced; one that dies
//! soon after starting is replaced after a growing delay (0.1 s, doubling,
//! at most 10 s); if workers keep dying at start-up, or one reports that it
//! cannot start at all, the master stops the pool and exits with an error
//! instead of looping.
//!
//! Signals: SIGTERM, SIGINT and SIGQUIT stop the pool: workers finish the
//! request in hand and exit; those still busy after `shutdown_timeout_s`
//! are killed.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use log::{error, info, warn};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::config::Config;
use crate::listener::Listener;
use crate::sys::{self, Forked, SignalPipe};
use crate::worker;

/// A worker that dies sooner than this after starting counts as failing
/// at start-up.
const EARLY_DEATH: Duration = Duration::from_secs(2);
/// Start-up failures in a row, in one slot, before the master gives up.
const MAX_EARLY_DEATHS: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(10);

const MASTER_SIGNALS: [Signal; 4] =
    [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT];

/// One place in the pool, with or without a live worker.
struct WorkerSlot {
    pid: Option<Pid>,
    started: Instant,
    early_deaths: u32,
    respawn_at: Instant,
}

struct Master {
    config: Config,
    listener: Listener,
    signals: SignalPipe,
    slots: Vec<WorkerSlot>,
}

/// Runs the pool until it is told to stop; an error if it had to give up.
pub fn run(config: Config) -> anyhow::Result<()> {
    let mode = config.socket_mode_bits().map_err(anyhow::Error::msg)?;
    let listener = Listener::open(&config.socket, mode)
        .context("cannot open the listening socket")?;
    let signals = SignalPipe::install(&MASTER_SIGNALS)
        .context("cannot install signal handlers")?;
    let now = Instant::now();
    let slots = (0..config.worker_count())
        .map(|_| WorkerSlot {
            pid: None,
            started: now,
            early_deaths: 0,
            respawn_at: now,
        })
        .collect();
    let mut master = Master { config, listener, signals, slots };
    info!(
        "master started pid={} workers={} socket={} inherited={}",
        std::process::id(),
        master.slots.len(),
        master.config.socket.display(),
        master.listener.inherited()
    );
    let result = master.supervise();
    master.stop_workers();
    master.listener.remove();
    info!("master stopped pid={}", std::process::id());
    result
}

impl Master {
    fn supervise(&mut self) -> anyhow::Result<()> {
        loop {
            self.reap_workers()?;
            if let Some(signal) = self
                .signals
                .drain()
                .into_iter()
                .find(|s| *s != Signal::SIGCHLD)
            {
                info!("master stopping signal={signal}");
                return Ok(());
            }
            self.spawn_missing_workers()?;
            let wait = self.next_wake();
            sys::wait_readable(&[self.signals.fd()], wait)
                .context("poll on the signal pipe")?;
        }
    }

    /// How long the loop may sleep: until the next delayed respawn, or a
    /// second at most.
    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        self.slots
            .iter()
            .filter(|slot| slot.pid.is_none())
            .map(|slot| slot.respawn_at.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1))
    }

    /// Collects every exited worker (waitpid(2) with WNOHANG), logs how it
    /// ended and schedules its replacement.
    fn reap_workers(&mut self) -> anyhow::Result<()> {
        loop {
            let status =
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive)
                    | Err(nix::errno::Errno::ECHILD) => {
                        return Ok(());
                    }
                    Ok(status) => status,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(err) => return Err(err).context("waitpid"),
                };
            let Some(pid) = status.pid() else { continue };
            let Some(index) =
                self.slots.iter().position(|s| s.pid == Some(pid))
            else {
                continue;
            };
            let slot = &mut self.slots[index];
            slot.pid = None;
            let uptime = slot.started.elapsed();
            let fields = format!(
                "pid={pid} slot={index} uptime_s={}",
                uptime.as_secs()
            );
            match status {
                WaitStatus::Exited(_, worker::EXIT_BOOT_FAILED) => {
                    error!("worker boot failed {fields}; master giving up");
                    bail!("a worker could not start; see the line above");
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
            if uptime < EARLY_DEATH {
                slot.early_deaths += 1;
                if slot.early_deaths >= MAX_EARLY_DEATHS {
                    error!(
                        "workers keep dying at start-up slot={index} \
                         deaths={}; master giving up",
                        slot.early_deaths
                    );
                    bail!("workers keep dying at start-up");
                }
                let backoff = Duration::from_millis(100)
                    * 2u32.pow(slot.early_deaths - 1);
                slot.respawn_at = Instant::now() + backoff.min(MAX_BACKOFF);
            } else {
                slot.early_deaths = 0;
                slot.respawn_at = Instant::now();
            }
        }
    }

    fn spawn_missing_workers(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if slot.pid.is_none() && slot.respawn_at <= now {
                self.spawn_worker(index)?;
            }
        }
        Ok(())
    }

    fn spawn_worker(&mut self, index: usize) -> anyhow::Result<()> {
        match sys::fork().context("fork() failed")? {
            Forked::Child => {
                worker::run(&self.listener.socket, &self.config, index)
            }
            Forked::Parent(pid) => {
                let slot = &mut self.slots[index];
                slot.pid = Some(pid);
                slot.started = Instant::now();
                Ok(())
            }
        }
    }

    /// Asks every worker to stop after its request, waits up to
    /// `shutdown_timeout_s`, then kills the rest.
    fn stop_workers(&mut self) {
        self.signal_workers(Signal::SIGTERM);
        let deadline = Instant::now()
            + Duration::from_secs(self.config.shutdown_timeout_s);
        while self.live_workers() > 0 && Instant::now() < deadline {
            let _ = self.reap_quietly();
            let _ = sys::wait_readable(
                &[self.signals.fd()],
                Duration::from_millis(50),
            );
            self.signals.drain();
        }
        if self.live_workers() > 0 {
            error!(
                "workers still busy after shutdown_timeout_s={}; killing {}",
                self.config.shutdown_timeout_s,
                self.live_workers()
            );
            self.signal_workers(Signal::SIGKILL);
            while self.live_workers() > 0 {
                if self.reap_quietly().is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Reaps without replacing: used while stopping.
    fn reap_quietly(&mut self) -> nix::Result<()> {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))? {
                WaitStatus::StillAlive => return Ok(()),
                status => {
                    if let Some(pid) = status.pid() {
                        for slot in &mut self.slots {
                            if slot.pid == Some(pid) {
                                slot.pid = None;
                            }
                        }
                    }
                }
            }
        }
    }

    fn signal_workers(&self, signal: Signal) {
        for pid in self.slots.iter().filter_map(|slot| slot.pid) {
            let _ = kill(pid, signal);
        }
    }

    fn live_workers(&self) -> usize {
        self.slots.iter().filter(|slot| slot.pid.is_some()).count()
    }
}
