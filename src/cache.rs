//! The cache tree: derivatives on disk, where Nginx serves them from.
//!
//! # What a derivative is called
//!
//! A derivative's file is the request's path, as Nginx normalises it into
//! `$uri`, under the cache root, plus the extension of its format:
//!
//! ```text
//! GET /img/w_300,f_webp/photos/a.jpg   ->  <cache_root>/img/w_300,f_webp/photos/a.jpg.webp
//! GET /img/w_300/photos/b.jpg          ->  <cache_root>/img/w_300/photos/b.jpg.png  (b.jpg holds PNG bytes)
//! ```
//!
//! The URL is the key, so Nginx finds a hit with a plain `try_files`, and
//! nothing but the URL goes into it: two spellings of the same options
//! (`w_300,h_200` and `h_200,w_300`) are two files. The extension is the
//! format actually written, which Nginx turns into the `Content-Type`, so
//! the header always matches the bytes. With `f_auto` the same URL has one
//! file per negotiated format side by side (`.avif`, `.webp`, `.jpg`), and
//! Nginx picks by `Accept` (see `nginx/imgworker-http.conf`); an animated
//! WebP made for `f_auto` is `.awebp`, apart from the still `.webp` (see
//! the output module).
//!
//! The original's modification time is not in the key: a replaced
//! original keeps its old derivatives until they are removed.
//!
//! # How a derivative is written
//!
//! The bytes go into an unnamed file in the final directory (O_TMPFILE),
//! are flushed to disk (unless `cache_fsync` is off), and the file is then
//! linked under its final name in one step. Writing ([`Cache::write`]) and
//! flushing and naming ([`Pending::commit`]) are two calls, so that a
//! worker can render its next request while the disk takes its time. Nginx therefore sees either no
//! file or a whole one, never a part; a worker killed while writing leaves
//! nothing at all. Two workers rendering the same derivative at once both
//! finish, and the second replaces the first by rename(2); both files were
//! whole, so a reader gets one or the other. On file systems without
//! O_TMPFILE the bytes go to a hidden `.…tmp` file beside the final one
//! and are renamed; a worker killed in that window leaves the hidden file,
//! which Nginx never serves (no URL ends in `.tmp`).
//!
//! Concurrent requests for the same new derivative do not all render it:
//! a worker takes an exclusive lock (flock(2)) for the derivative's URL
//! before rendering, and a worker that had to wait for it first looks for
//! the file the other one made, and answers with that. The locks are 256
//! files in `.locks/` under the cache root, chosen by a hash of the URL,
//! so two unrelated URLs that share a lock file wait for each other; that
//! is rare and short. If a lock cannot be taken the worker renders
//! anyway: the write-then-link above keeps the file whole either way.
//!
//! # Where it falls short
//!
//! The original's modification time is not part of the key, so a changed
//! original's derivatives stay until `imgworker sweep` or `purge` removes
//! them (see the sweep module). A URL whose file name would be too long,
//! or would clash with a directory made for another URL, is answered but
//! not stored, and so is rendered every time.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::sys;

/// The derivative files of one cache root.
pub struct Cache {
    root: PathBuf,
    fsync: bool,
}

/// A derivative that is now on disk.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub modified: SystemTime,
    pub len: u64,
}

impl Stored {
    /// The `ETag` Nginx gives this file when it serves it: modification
    /// time and size, in hex (ngx_http_set_etag).
    pub fn etag(&self) -> String {
        let secs = self
            .modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("\"{secs:x}-{:x}\"", self.len)
    }

    /// The `Last-Modified` Nginx gives this file.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }
}

/// Why a derivative could not be stored.
#[derive(Debug)]
pub enum CacheError {
    /// The cache's file system is full (ENOSPC or EDQUOT).
    Full(PathBuf),
    /// The URL makes a name the file system cannot hold: too long, or
    /// clashing with a directory made for another URL (`a.jpg.jpg` the
    /// derivative of `a.jpg`, and `a.jpg.jpg/` the directory of
    /// `a.jpg.jpg/b.jpg`'s). The derivative is served but not stored.
    Unstorable(PathBuf, io::Error),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::Full(path) => {
                write!(f, "{}: no space left in the cache", path.display())
            }
            CacheError::Unstorable(path, err) => {
                write!(f, "{}: cannot be stored: {err}", path.display())
            }
            CacheError::Io(path, err) => {
                write!(f, "{}: cannot write derivative: {err}", path.display())
            }
        }
    }
}

impl Cache {
    pub fn new(root: &Path, fsync: bool) -> Cache {
        Cache { root: root.to_path_buf(), fsync }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of the derivative for `uri` (a checked request path with
    /// no leading slash) in `extension`'s format.
    pub fn path_of(&self, uri: &str, extension: &str) -> PathBuf {
        self.root.join(format!("{uri}.{extension}"))
    }

    /// Takes the render lock of `uri`, waiting while another worker holds
    /// it; released when the guard is dropped.
    pub fn lock(&self, uri: &str) -> io::Result<RenderLock> {
        let dir = self.root.join(".locks");
        let path = dir.join(format!("{:02x}.lock", bucket(uri)));
        let open = || File::options().create(true).append(true).open(&path);
        let file = match open() {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)?;
                open()?
            }
            other => other?,
        };
        sys::lock_exclusive(&file)?;
        Ok(RenderLock { _file: file })
    }

    /// The derivative of `uri` another worker made, if any: the first of
    /// `extensions` that exists, with its bytes.
    pub fn existing(
        &self,
        uri: &str,
        extensions: &[&str],
    ) -> Option<(usize, Vec<u8>, Stored)> {
        extensions.iter().enumerate().find_map(|(index, extension)| {
            let mut file = File::open(self.path_of(uri, extension)).ok()?;
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file, &mut bytes).ok()?;
            Some((index, bytes, stored(&file).ok()?))
        })
    }

    /// Writes a derivative where Nginx will find it, whole or not at all:
    /// [`Cache::write`], then [`Pending::commit`].
    pub fn store(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Stored, CacheError> {
        self.write(path, bytes)?.commit()
    }

    /// Writes a derivative's bytes into a file no reader can see yet.
    /// [`Pending::commit`] flushes it and gives it its name; a `Pending`
    /// dropped without that leaves nothing behind. On failure,
    /// directories made for it and left empty are removed.
    pub fn write(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Pending, CacheError> {
        let dir = path.parent().expect("a derivative path has a directory");
        let mut result = self.write_in(dir, path, bytes);
        // A sweep may have removed the directory between the two steps.
        if matches!(&result, Err(err) if err.kind() == io::ErrorKind::NotFound)
        {
            result = self.write_in(dir, path, bytes);
        }
        result.map_err(|err| {
            remove_empty_parents(&self.root, dir);
            classify(path, err)
        })
    }

    fn write_in(
        &self,
        dir: &Path,
        path: &Path,
        bytes: &[u8],
    ) -> io::Result<Pending> {
        std::fs::create_dir_all(dir)?;
        let (mut file, temp) = match sys::create_unnamed(dir) {
            Ok(file) => (file, None),
            Err(err) if sys::unnamed_unsupported(&err) => {
                let temp = temp_name(path);
                (File::create_new(&temp)?, Some(temp))
            }
            Err(err) => return Err(err),
        };
        let mut pending = Pending {
            file: None,
            temp,
            path: path.to_path_buf(),
            root: self.root.clone(),
            fsync: self.fsync,
            stored: Stored { modified: SystemTime::UNIX_EPOCH, len: 0 },
        };
        file.write_all(bytes)?;
        pending.stored = stored(&file)?;
        pending.file = Some(file);
        Ok(pending)
    }
}

/// A derivative whose bytes are written but which has no name yet, so
/// Nginx cannot see it. Flushing it to disk is the slow part of storing a
/// derivative; a worker can leave that to another thread and go on to the
/// next request.
pub struct Pending {
    /// None only while it is being made.
    file: Option<File>,
    /// The hidden file the bytes are in, where O_TMPFILE is missing.
    temp: Option<PathBuf>,
    path: PathBuf,
    root: PathBuf,
    fsync: bool,
    stored: Stored,
}

impl Pending {
    /// What the derivative will be once committed: the same modification
    /// time and size, as naming a file changes neither.
    pub fn stored(&self) -> Stored {
        self.stored
    }

    /// Flushes the bytes to disk (unless `cache_fsync` is off), then gives
    /// the file its final name in one step. On failure nothing is left
    /// and directories left empty are removed.
    pub fn commit(mut self) -> Result<Stored, CacheError> {
        let file = self.file.take().expect("a pending file is open");
        let result = self.publish(&file);
        drop(file);
        if let Err(err) = result {
            self.discard();
            let dir = self.path.parent().unwrap_or(&self.root);
            remove_empty_parents(&self.root, dir);
            return Err(classify(&self.path, err));
        }
        self.temp = None;
        Ok(self.stored)
    }

    fn publish(&self, file: &File) -> io::Result<()> {
        if self.fsync {
            file.sync_data()?;
        }
        if let Some(temp) = &self.temp {
            return std::fs::rename(temp, &self.path);
        }
        match sys::link_into_place(file, &self.path) {
            Ok(()) => Ok(()),
            // Another worker made it first; ours replaces it whole.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let temp = temp_name(&self.path);
                sys::link_into_place(file, &temp)?;
                std::fs::rename(&temp, &self.path).inspect_err(|_| {
                    let _ = std::fs::remove_file(&temp);
                })
            }
            Err(err) => Err(err),
        }
    }

    /// Removes the hidden file, if the bytes went into one.
    fn discard(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Sorts a failure to store `path` by what a sysadmin does about it.
fn classify(path: &Path, err: io::Error) -> CacheError {
    match err.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            CacheError::Full(path.to_path_buf())
        }
        Some(libc::ENAMETOOLONG)
        | Some(libc::ENOTDIR)
        | Some(libc::EEXIST)
        | Some(libc::EISDIR) => {
            CacheError::Unstorable(path.to_path_buf(), err)
        }
        _ => CacheError::Io(path.to_path_buf(), err),
    }
}

/// Removes `dir` and its parents below `root` while they are empty.
fn remove_empty_parents(root: &Path, dir: &Path) {
    let mut dir = dir;
    while dir.starts_with(root) && dir != root {
        if std::fs::remove_dir(dir).is_err() {
            return;
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => return,
        }
    }
}

/// Held while a worker renders one URL; see [`Cache::lock`].
pub struct RenderLock {
    _file: File,
}

/// Which of the 256 lock files guards `uri` (FNV-1a).
fn bucket(uri: &str) -> u8 {
    let hash = uri.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash >> 56) as u8
}

fn stored(file: &File) -> io::Result<Stored> {
    let meta = file.metadata()?;
    Ok(Stored { modified: meta.modified()?, len: meta.len() })
}

/// A hidden name beside `path` that no URL can ask for.
fn temp_name(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name =
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_derivative_lands_whole_under_its_final_name_only() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path(), true);
        let path = cache.path_of("img/w_300/photos/a.jpg", "webp");
        let stored = cache.store(&path, b"RIFF....WEBP").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"RIFF....WEBP");
        assert_eq!(stored.len, 12);
        assert_eq!(names(path.parent().unwrap()), ["a.jpg.webp"]);
    }

    #[test]
    fn a_written_derivative_is_invisible_until_committed() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path(), true);
        let path = cache.path_of("img/w_300/a.jpg", "jpg");
        let pending = cache.write(&path, b"whole").unwrap();
        assert_eq!(names(path.parent().unwrap()), Vec::<String>::new());
        let promised = pending.stored();
        let stored = pending.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        assert_eq!((stored.modified, stored.len), (promised.modified, 5));

        // Dropped before its commit, as when a worker stops: nothing.
        let other = cache.path_of("img/w_300/b.jpg", "jpg");
        drop(cache.write(&other, b"never seen").unwrap());
        assert_eq!(names(path.parent().unwrap()), ["a.jpg.jpg"]);
    }

    #[test]
    fn a_second_render_replaces_the_first() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path(), false);
        let path = cache.path_of("img/w_1/a.jpg", "jpg");
        cache.store(&path, b"first").unwrap();
        cache.store(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(names(path.parent().unwrap()), ["a.jpg.jpg"]);
    }

    #[test]
    fn a_name_that_cannot_be_stored_leaves_no_directories() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path(), false);
        let long = "n".repeat(300);
        let path = cache.path_of(&format!("img/w_1/dir/{long}"), "jpg");
        let err = cache.store(&path, b"x").unwrap_err();
        assert!(matches!(err, CacheError::Unstorable(..)), "{err}");
        assert!(!root.path().join("img").exists(), "no empty directories");

        // a.jpg's derivative is a file where a.jpg.jpg/ needs a directory.
        let file = cache.path_of("img/w_1/a.jpg", "jpg");
        cache.store(&file, b"x").unwrap();
        let under = cache.path_of("img/w_1/a.jpg.jpg/b.jpg", "jpg");
        let err = cache.store(&under, b"x").unwrap_err();
        assert!(matches!(err, CacheError::Unstorable(..)), "{err}");
    }

    #[test]
    fn a_second_worker_waits_for_the_lock_then_finds_the_file() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::new(root.path(), false);
        let uri = "img/w_1/a.jpg";
        let held = cache.lock(uri).unwrap();
        let waiter = {
            let root = root.path().to_path_buf();
            std::thread::spawn(move || {
                let cache = Cache::new(&root, false);
                let _lock = cache.lock(uri).unwrap();
                cache.existing(uri, &["png", "webp"])
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        cache.store(&cache.path_of(uri, "webp"), b"made once").unwrap();
        drop(held);
        let (index, bytes, stored) = waiter.join().unwrap().expect("found");
        assert_eq!(
            (index, bytes.as_slice(), stored.len),
            (1, &b"made once"[..], 9)
        );
    }

    #[test]
    fn the_etag_is_the_one_nginx_gives() {
        let stored = Stored {
            modified: SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(0x5f5e100),
            len: 0x1234,
        };
        assert_eq!(stored.etag(), "\"5f5e100-1234\"");
        assert_eq!(stored.last_modified(), "Sat, 03 Mar 1973 09:46:40 GMT");
    }
}
