//! Every raw system call and `unsafe` block outside libvips, behind safe
//! functions, so that the master and the workers read as policy.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

/// The write end of the self-pipe, for the signal handler.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe only drops a
        // wake-up, and the pending signal is still seen by the next read.
        unsafe {
            libc::write(fd, &byte as *const u8 as *const libc::c_void, 1);
        }
    }
}

/// Signals delivered to this process, as bytes in a pipe the main loop
/// polls (the self-pipe trick): the handler does nothing else.
pub struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    /// Creates the pipe and routes `signals` into it. System calls that a
    /// signal interrupts fail with EINTR rather than restarting, so a
    /// blocked process notices at once.
    pub fn install(signals: &[Signal]) -> io::Result<SignalPipe> {
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for &signal in signals {
            // SAFETY: the handler only calls write(2).
            unsafe { nix::sys::signal::sigaction(signal, &action) }?;
        }
        Ok(SignalPipe { read, _write: write })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.read.as_fd()
    }

    /// The signals received since the last call, oldest first.
    pub fn drain(&self) -> Vec<Signal> {
        let mut buf = [0u8; 64];
        let mut signals = Vec::new();
        loop {
            match nix::unistd::read(self.read.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => signals.extend(
                    buf[..n]
                        .iter()
                        .filter_map(|&b| Signal::try_from(b as i32).ok()),
                ),
            }
        }
        signals
    }
}

/// Puts `signals` back to their default action (in a new child).
pub fn reset_signals(signals: &[Signal]) {
    let action =
        SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for &signal in signals {
        // SAFETY: restoring the default disposition is always sound.
        let _ = unsafe { nix::sys::signal::sigaction(signal, &action) };
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; returns which
/// were readable. EINTR counts as "nothing ready".
pub fn wait_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Duration,
) -> io::Result<Vec<bool>> {
    let mut polls: Vec<PollFd> =
        fds.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)).collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(&mut polls, timeout) {
        Ok(_) => Ok(polls
            .iter()
            .map(|p| {
                p.revents().is_some_and(|r| {
                    r.intersects(
                        PollFlags::POLLIN
                            | PollFlags::POLLHUP
                            | PollFlags::POLLERR,
                    )
                })
            })
            .collect()),
        Err(Errno::EINTR) => Ok(vec![false; fds.len()]),
        Err(err) => Err(err.into()),
    }
}

/// What `fork` made of this process.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// Forks. The child must not return into code that assumes other threads:
/// the master has none, which is why libvips starts only in workers.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the master is single-threaded when it forks (it never starts
    // libvips or any thread), so the child inherits a consistent state.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Asks the kernel to send `signal` to this process when its parent dies,
/// so workers never outlive a master killed with SIGKILL.
pub fn die_with_parent(signal: Signal) -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG and a valid signal number.
    let rc = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The listening socket systemd passed (`LISTEN_FDS`, sd_listen_fds(3)),
/// if it passed one to this process.
pub fn systemd_listener() -> io::Result<Option<UnixListener>> {
    const SD_LISTEN_FDS_START: RawFd = 3;
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if !for_us || count == 0 {
        return Ok(None);
    }
    if count > 1 {
        return Err(io::Error::other(format!(
            "systemd passed {count} sockets; imgworker takes exactly one"
        )));
    }
    // SAFETY: sd_listen_fds(3): with LISTEN_PID naming us, fd 3 is ours to
    // own; nothing else in the process has taken it.
    let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(Some(UnixListener::from(fd)))
}

/// Opens `path` for reading beneath the directory `root`, letting the
/// kernel refuse any resolution that would leave it (`..`, absolute
/// symlinks, symlinks pointing outside): openat2(2) with RESOLVE_BENEATH.
pub fn open_beneath(root: &File, path: &Path) -> io::Result<File> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let fd = nix::fcntl::openat2(root.as_raw_fd(), path, how)?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Creates an unnamed file in `dir` (open(2) with O_TMPFILE): it has no
/// name until [`link_into_place`] gives it one, so a process killed while
/// writing leaves nothing behind.
pub fn create_unnamed(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
}

/// Gives a file made by [`create_unnamed`] its name, atomically: linkat(2)
/// through /proc/self/fd. Fails with `AlreadyExists` if the name is taken.
pub fn link_into_place(file: &File, path: &Path) -> io::Result<()> {
    let proc_path =
        PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    nix::unistd::linkat(
        None,
        proc_path.as_path(),
        None,
        path,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )?;
    Ok(())
}

/// Whether an error says the file system cannot make unnamed files.
pub fn unnamed_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
    )
}

/// The permissions of a socket file the master made.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    nix::sys::stat::fchmodat(
        None,
        path,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    Ok(())
}
