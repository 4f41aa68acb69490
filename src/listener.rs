//! The socket Nginx connects to: one systemd passed us, or one we bind.
//!
//! A socket the master binds is removed when the master stops; one that
//! systemd passed (socket activation) belongs to systemd and is left alone.
//! A socket file left behind by a crash is replaced, but a socket some
//! running server still answers on is not: binding over it would steal
//! its traffic.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::sys;

pub struct Listener {
    pub socket: UnixListener,
    /// The path we bound, until it is removed.
    created: Option<PathBuf>,
    /// The path and queue length we bound with, to compare a reloaded
    /// configuration with; none for systemd's socket, which ignores both.
    bound: Option<(PathBuf, i32)>,
}

impl Listener {
    /// Takes systemd's socket if there is one, else binds `path` with a
    /// listen queue of `backlog` connections.
    pub fn open(path: &Path, mode: u32, backlog: i32) -> io::Result<Listener> {
        if let Some(socket) = sys::systemd_listener()? {
            socket.set_nonblocking(true)?;
            return Ok(Listener { socket, created: None, bound: None });
        }
        let context = |err: io::Error| {
            io::Error::new(err.kind(), format!("{}: {err}", path.display()))
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{}: exists and is not a socket; refusing to replace it",
                        path.display()
                    ),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{}: another server is listening on this socket",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path).map_err(context)?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(context)?;
        }
        let socket = sys::bind_unix(path, backlog).map_err(context)?;
        sys::set_mode(path, mode).map_err(context)?;
        // Workers poll, then accept; whoever loses the race gets
        // WouldBlock instead of sleeping in accept.
        socket.set_nonblocking(true)?;
        Ok(Listener {
            socket,
            created: Some(path.to_path_buf()),
            bound: Some((path.to_path_buf(), backlog)),
        })
    }

    /// The path and queue length of a socket we bound; `None` for one
    /// systemd passed.
    pub fn bound(&self) -> Option<(&Path, i32)> {
        self.bound.as_ref().map(|(path, backlog)| (path.as_path(), *backlog))
    }

    /// Whether systemd passed the socket.
    pub fn inherited(&self) -> bool {
        self.bound.is_none()
    }

    /// Removes the socket file if we made it, once: new connections fail
    /// from then on, while those already queued stay in the queue.
    pub fn remove(&mut self) {
        if let Some(path) = self.created.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
