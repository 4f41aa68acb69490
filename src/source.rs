//! Where originals come from.
//!
//! The pipeline asks a [`Source`] for the bytes of one original by its
//! path under the source root, and nothing else; a second kind of source
//! (an S3-compatible bucket, say) implements the same trait and the
//! pipeline does not change.
//!
//! [`LocalSource`] reads a directory. It opens each original relative to a
//! descriptor of the root with openat2(2) and RESOLVE_BENEATH, so the
//! kernel, not string checks alone, refuses `..`, absolute symlinks and
//! symlinks that lead outside the root; symlinks that stay inside work.
//! The file is then mapped into memory rather than copied.
//!
//! Mapping has one known cost: if another program truncates an original
//! while a worker reads it, the worker is killed by SIGBUS and that one
//! request fails (the master replaces the worker). Replacing originals by
//! writing a new file and renaming it over the old one, as upload code
//! usually does, is safe.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::sys;

/// A relative path that names an original: non-empty components, none of
/// them `.` or `..`, no NUL or control bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePath(String);

impl SourcePath {
    /// Checks a path taken from a URL, or says why it is refused.
    pub fn new(path: &str) -> Result<SourcePath, &'static str> {
        if path.is_empty() {
            return Err("no path to an original");
        }
        if path.bytes().any(|b| b.is_ascii_control()) {
            return Err("control characters in the path");
        }
        for component in path.split('/') {
            match component {
                "" => return Err("empty or absolute path component"),
                "." | ".." => return Err("dot segment in the path"),
                _ => {}
            }
        }
        Ok(SourcePath(path.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SourcePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bytes of one original.
pub struct Original {
    bytes: Bytes,
}

enum Bytes {
    Mapped(Mmap),
    /// An empty file cannot be mapped.
    Empty,
}

impl Deref for Original {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(map) => map,
            Bytes::Empty => &[],
        }
    }
}

/// Why an original could not be read.
#[derive(Debug)]
pub enum SourceError {
    NotFound,
    /// The path leaves the root, or names something that is not a file.
    Refused,
    TooLarge {
        bytes: u64,
        limit: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::NotFound => f.write_str("no such original"),
            SourceError::Refused => {
                f.write_str("not an original under the source root")
            }
            SourceError::TooLarge { bytes, limit } => {
                write!(
                    f,
                    "original is {bytes} bytes, over the limit of {limit}"
                )
            }
            SourceError::Io(err) => write!(f, "cannot read original: {err}"),
        }
    }
}

/// A place originals are read from.
pub trait Source {
    fn fetch(&self, path: &SourcePath) -> Result<Original, SourceError>;
}

/// Originals in a directory of the local file system.
pub struct LocalSource {
    root: File,
    /// The root with every symlink resolved, for the fallback check.
    real_root: PathBuf,
    max_bytes: u64,
}

impl LocalSource {
    pub fn open(root: &Path, max_bytes: u64) -> io::Result<LocalSource> {
        let root = File::open(root).map_err(|err| {
            io::Error::new(err.kind(), format!("{}: {err}", root.display()))
        })?;
        let real_root = std::fs::read_link(fd_path(&root))?;
        if !root.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{}: not a directory", real_root.display()),
            ));
        }
        Ok(LocalSource { root, real_root, max_bytes })
    }

    /// Opens an original beneath the root: openat2 where the kernel has
    /// it; before Linux 5.6 (or under a seccomp filter that hides it),
    /// a plain open whose resolved path is then checked against the root.
    fn open_file(&self, path: &Path) -> io::Result<File> {
        match sys::open_beneath(&self.root, path) {
            Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => {
                use std::os::unix::fs::OpenOptionsExt;
                let file = File::options()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(self.real_root.join(path))?;
                let real = std::fs::read_link(fd_path(&file))?;
                if !real.starts_with(&self.real_root) {
                    return Err(io::Error::from_raw_os_error(libc::EXDEV));
                }
                Ok(file)
            }
            result => result,
        }
    }
}

/// The /proc path that names an open file, which readlink(2) resolves.
fn fd_path(file: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

impl Source for LocalSource {
    fn fetch(&self, path: &SourcePath) -> Result<Original, SourceError> {
        let file = self.open_file(Path::new(path.as_str())).map_err(
            |err| match err.raw_os_error() {
                // No such file, a name too long to be one, a symlink loop.
                Some(libc::ENOENT)
                | Some(libc::ENOTDIR)
                | Some(libc::ENAMETOOLONG)
                | Some(libc::ELOOP) => SourceError::NotFound,
                // EXDEV: the path would leave the root (RESOLVE_BENEATH
                // also refuses absolute symlinks, even to inside it);
                // EACCES: not ours to read.
                Some(libc::EXDEV) | Some(libc::EACCES) => SourceError::Refused,
                _ => SourceError::Io(err),
            },
        )?;
        let meta = file.metadata().map_err(SourceError::Io)?;
        // Directories, FIFOs, devices and sockets are not originals.
        if !meta.is_file() {
            return Err(SourceError::NotFound);
        }
        if meta.len() > self.max_bytes {
            return Err(SourceError::TooLarge {
                bytes: meta.len(),
                limit: self.max_bytes,
            });
        }
        if meta.len() == 0 {
            return Ok(Original { bytes: Bytes::Empty });
        }
        // SAFETY: the mapping is read-only and private; the one hazard,
        // truncation by another program, is described in the module doc.
        let map = unsafe { Mmap::map(&file) }.map_err(SourceError::Io)?;
        Ok(Original { bytes: Bytes::Mapped(map) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_with_dot_segments_are_refused() {
        for bad in
            ["", "../x", "a/../../x", "./x", "/etc/passwd", "a//b", "a\0b"]
        {
            assert!(SourcePath::new(bad).is_err(), "{bad:?}");
        }
        assert!(SourcePath::new("photos/a b.jpg").is_ok());
        assert!(SourcePath::new("..a/b..").is_ok());
    }

    #[test]
    fn a_symlink_out_of_the_root_is_refused_by_the_kernel() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.jpg"), b"canary").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("inside.jpg"), b"ok").unwrap();
        symlink(
            outside.path().join("secret.jpg"),
            root.path().join("out.jpg"),
        )
        .unwrap();
        symlink("inside.jpg", root.path().join("alias.jpg")).unwrap();

        let source = LocalSource::open(root.path(), 1 << 20).unwrap();
        let fetch = |p: &str| source.fetch(&SourcePath::new(p).unwrap());
        assert!(matches!(fetch("out.jpg"), Err(SourceError::Refused)));
        assert_eq!(&*fetch("alias.jpg").ok().unwrap(), b"ok");
        assert!(matches!(fetch("missing.jpg"), Err(SourceError::NotFound)));
    }

    #[test]
    fn an_original_over_the_size_limit_is_not_read() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("big.jpg"), vec![0u8; 100]).unwrap();
        let source = LocalSource::open(root.path(), 99).unwrap();
        let result = source.fetch(&SourcePath::new("big.jpg").unwrap());
        assert!(matches!(
            result,
            Err(SourceError::TooLarge { bytes: 100, .. })
        ));
    }

    #[test]
    fn an_empty_file_is_empty_bytes() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("zero.jpg"), b"").unwrap();
        let source = LocalSource::open(root.path(), 99).unwrap();
        let original = source.fetch(&SourcePath::new("zero.jpg").unwrap());
        assert!(original.ok().unwrap().is_empty());
    }
}
