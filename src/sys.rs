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
/// O_NONBLOCK keeps a FIFO from blocking the open; reads of regular files
/// ignore it.
pub fn open_beneath(root: &File, path: &Path) -> io::Result<File> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY
        | OFlag::O_NONBLOCK;
    let how = OpenHow::new().flags(flags).resolve(
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

/// Binds a listening unix socket at `path` with a listen queue of
/// `backlog` connections (listen(2); the kernel caps it at
/// net.core.somaxconn).
pub fn bind_unix(path: &Path, backlog: i32) -> io::Result<UnixListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen,
        socket,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    let backlog = Backlog::new(backlog).map_err(io::Error::from)?;
    listen(&fd, backlog)?;
    Ok(UnixListener::from(fd))
}

/// Waits for an exclusive flock(2) on `file`. The lock goes with the open
/// file: closing it, or the process dying, releases it.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
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

/// This process's resident set size in bytes, from /proc/self/statm; 0
/// if it cannot be read.
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf with a valid name has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page
}

/// Maps `len` zeroed bytes shared with every child forked afterwards
/// (mmap(2) with MAP_SHARED | MAP_ANONYMOUS). Never unmapped.
pub fn shared_zeroed(
    len: usize,
) -> io::Result<std::ptr::NonNull<libc::c_void>> {
    use nix::sys::mman::{MapFlags, ProtFlags};
    let len = std::num::NonZeroUsize::new(len)
        .ok_or_else(|| io::Error::other("empty shared mapping"))?;
    // SAFETY: a fresh anonymous mapping aliases nothing; the kernel zeroes
    // it.
    let map = unsafe {
        nix::sys::mman::mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }?;
    Ok(map)
}

/// Tells systemd about the service's state (sd_notify(3)): `READY=1`,
/// `STATUS=…`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`. Does nothing
/// when not started by systemd with `Type=notify`.
pub fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(Path::new(&path)),
        _ => return,
    };
    let Ok(addr) = addr else { return };
    if let Ok(socket) = UnixDatagram::unbound() {
        let _ = socket.send_to_addr(state.as_bytes(), &addr);
    }
}

/// How often systemd wants `WATCHDOG=1` (sd_watchdog_enabled(3)), if at
/// all.
pub fn systemd_watchdog() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

/// Connections waiting in a listening unix socket's queue, and the queue's
/// size, as the kernel reports them to `ss -xl`: a sock_diag(7) request
/// for the socket's inode with UDIAG_SHOW_RQLEN. `None` if the kernel
/// does not answer.
pub fn listen_queue(listener: &UnixListener) -> Option<(u32, u32)> {
    use nix::sys::stat::fstat;

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_RQLEN: u32 = 0x10;
    const UNIX_DIAG_RQLEN: u16 = 4;
    const TCP_LISTEN: u32 = 10;

    let inode = fstat(listener.as_raw_fd()).ok()?.st_ino as u32;
    // SAFETY: a plain socket(2) call; the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };

    // struct nlmsghdr, then struct unix_diag_req (linux/unix_diag.h).
    let mut request = Vec::with_capacity(40);
    request.extend_from_slice(&40u32.to_ne_bytes());
    request.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    request.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    request.extend_from_slice(&inode.to_ne_bytes());
    request.extend_from_slice(&UDIAG_SHOW_RQLEN.to_ne_bytes());
    request.extend_from_slice(&[0xff; 8]);
    // SAFETY: sending a buffer we own on a socket we own.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent != request.len() as isize {
        return None;
    }
    let mut reply = [0u8; 1024];
    // SAFETY: receiving into a buffer we own.
    let got = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if got < 16 + 16 {
        return None;
    }
    let reply = &reply[..got as usize];
    let u16_at = |at: usize| {
        Some(u16::from_ne_bytes(reply.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |at: usize| {
        Some(u32::from_ne_bytes(reply.get(at..at + 4)?.try_into().ok()?))
    };
    if u16_at(4)? != SOCK_DIAG_BY_FAMILY {
        return None; // NLMSG_ERROR: the kernel has no such socket.
    }
    // Attributes follow the 16-byte header and the 16-byte unix_diag_msg.
    let mut at = 32;
    while at + 4 <= reply.len() {
        let (len, kind) = (u16_at(at)? as usize, u16_at(at + 2)?);
        if len < 4 {
            break;
        }
        if kind == UNIX_DIAG_RQLEN {
            return Some((u32_at(at + 4)?, u32_at(at + 8)?));
        }
        at += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_queue_counts_waiting_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (queued, size) =
            listen_queue(&listener).expect("sock_diag answers");
        assert_eq!(queued, 0);
        assert!(size > 0);
        let _a = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let _b = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert_eq!(listen_queue(&listener).unwrap().0, 2);
    }
}
