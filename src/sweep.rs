//! Keeping the cache tree honest: `purge` and `sweep`.
//!
//! Both work on the files alone, while Nginx and the workers run: removing
//! a derivative only means the next request for it is a miss, and a file
//! Nginx is sending stays readable until it is closed. A sweep removes the
//! directories it leaves empty; a worker about to write into one that
//! vanished makes it again (the cache module retries once).
//!
//! The tree is `<cache root>/<prefix>/<options>/<path>.<ext>` (see the
//! cache module), so a derivative names its original: `<path>` under the
//! source root.
//!
//! Least recently used is judged by access time, which Nginx updates as it
//! reads, but which most file systems, mounted `relatime`, record at most
//! once a day: the order is right to within a day.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::transform::output::ANIMATED_WEBP;

/// The extensions a derivative can have, the last `f_auto`'s animated
/// WebP (see the output module).
const EXTENSIONS: [&str; 6] =
    ["jpg", "png", "webp", "avif", "gif", ANIMATED_WEBP];

/// Hidden files left by an interrupted write are removed after this long.
const STALE_TEMP_SECS: u64 = 3600;

/// Removes every derivative of the original `path` (relative to the source
/// root): all options, all formats. Returns how many files went.
pub fn purge(cache_root: &Path, path: &str) -> io::Result<usize> {
    let path = path.trim_start_matches('/');
    let mut removed = 0;
    for prefix in subdirectories(cache_root)? {
        for options in subdirectories(&prefix)? {
            for ext in EXTENSIONS {
                let file = options.join(format!("{path}.{ext}"));
                match std::fs::remove_file(&file) {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => {}
                    Err(err) => return Err(with_path(&file, err)),
                }
            }
        }
    }
    Ok(removed)
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Derivatives older than their original.
    pub stale: usize,
    /// Derivatives whose original is gone.
    pub orphaned: usize,
    /// Derivatives removed to bring the cache under its size.
    pub evicted: usize,
    /// Leftovers of interrupted writes.
    pub temporary: usize,
    pub kept: usize,
    pub kept_bytes: u64,
}

/// One derivative found by the walk.
struct Entry {
    path: PathBuf,
    bytes: u64,
    accessed: SystemTime,
}

/// Removes derivatives whose original changed or vanished since they were
/// made, then the least recently used ones until the cache holds at most
/// `max_bytes` (0: no bound).
pub fn sweep(
    cache_root: &Path,
    source_root: &Path,
    max_bytes: u64,
) -> io::Result<Swept> {
    let mut swept = Swept::default();
    let mut kept = Vec::new();
    let now = SystemTime::now();
    for prefix in subdirectories(cache_root)? {
        for options in subdirectories(&prefix)? {
            let mut files = Vec::new();
            walk(&options, &mut files)?;
            for file in files {
                let Ok(meta) = std::fs::symlink_metadata(&file) else {
                    continue;
                };
                let name =
                    file.file_name().unwrap_or_default().to_string_lossy();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    let age = meta
                        .modified()
                        .ok()
                        .and_then(|m| now.duration_since(m).ok());
                    if age.is_some_and(|a| a.as_secs() > STALE_TEMP_SECS) {
                        remove(&file)?;
                        swept.temporary += 1;
                    }
                    continue;
                }
                let rel = file.strip_prefix(&options).expect("walked beneath");
                let Some(original) = original_of(rel) else { continue };
                let made = meta.modified()?;
                match std::fs::metadata(source_root.join(&original)) {
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        remove(&file)?;
                        swept.orphaned += 1;
                    }
                    Err(err) => return Err(with_path(&original, err)),
                    Ok(source) if source.modified()? > made => {
                        remove(&file)?;
                        swept.stale += 1;
                    }
                    Ok(_) => kept.push(Entry {
                        path: file.clone(),
                        bytes: meta.len(),
                        accessed: meta.accessed().unwrap_or(made),
                    }),
                }
            }
        }
    }

    let mut total: u64 = kept.iter().map(|e| e.bytes).sum();
    if max_bytes > 0 && total > max_bytes {
        kept.sort_by_key(|e| e.accessed);
        let mut evict = 0;
        while total > max_bytes && evict < kept.len() {
            remove(&kept[evict].path)?;
            total -= kept[evict].bytes;
            evict += 1;
        }
        swept.evicted = evict;
        kept.drain(..evict);
    }
    swept.kept = kept.len();
    swept.kept_bytes = total;
    for prefix in subdirectories(cache_root)? {
        remove_empty_dirs(&prefix);
    }
    Ok(swept)
}

/// Removes the empty directories under `dir`, deepest first, and `dir`
/// itself if it ends up empty. Errors (a directory a worker just filled)
/// only mean it stays.
fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_empty_dirs(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// `photos/a.jpg.webp` → `photos/a.jpg`: the derivative's extension off.
fn original_of(rel: &Path) -> Option<PathBuf> {
    let ext = rel.extension()?.to_str()?;
    if !EXTENSIONS.contains(&ext) {
        return None;
    }
    let stem = rel.with_extension("");
    stem.file_name()?;
    Some(stem)
}

fn subdirectories(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(vec![]);
        }
        Err(err) => return Err(with_path(dir, err)),
    };
    let mut dirs = BTreeSet::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.insert(entry.path());
        }
    }
    Ok(dirs.into_iter().collect())
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|err| with_path(dir, err))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

fn remove(file: &Path) -> io::Result<()> {
    match std::fs::remove_file(file) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(with_path(file, err))
        }
        _ => Ok(()),
    }
}

fn with_path(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn touch(path: &Path, bytes: usize, modified: SystemTime) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![0u8; bytes]).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_times(
            std::fs::FileTimes::new()
                .set_modified(modified)
                .set_accessed(modified),
        )
        .unwrap();
    }

    #[test]
    fn purge_removes_every_derivative_of_one_original_only() {
        let cache = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for file in [
            "img/w_300/photos/a.jpg.jpg",
            "img/w_300,f_webp/photos/a.jpg.webp",
            "img/w_300,f_auto/photos/a.jpg.avif",
            "img/w_300,f_auto/photos/a.jpg.webp",
            "img/w_300,f_auto/photos/a.jpg.awebp",
            "img/w_300/photos/b.jpg.jpg",
            "img/w_300/photos/a.jpg.extra.jpg",
        ] {
            touch(&cache.path().join(file), 1, now);
        }
        assert_eq!(purge(cache.path(), "photos/a.jpg").unwrap(), 5);
        assert!(cache.path().join("img/w_300/photos/b.jpg.jpg").exists());
        assert!(
            cache.path().join("img/w_300/photos/a.jpg.extra.jpg").exists()
        );
        assert_eq!(purge(cache.path(), "/photos/a.jpg").unwrap(), 0);
    }

    #[test]
    fn a_derivative_names_its_original_whatever_its_format() {
        for ext in EXTENSIONS {
            let rel = format!("photos/a.gif.{ext}");
            assert_eq!(
                original_of(Path::new(&rel)),
                Some(PathBuf::from("photos/a.gif")),
                "{rel}"
            );
        }
        assert_eq!(original_of(Path::new("photos/a.gif.tmp")), None);
    }

    #[test]
    fn sweep_removes_stale_and_orphaned_then_the_least_recently_used() {
        let cache = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let now = SystemTime::now();
        // a.jpg changed after its derivative was made; b.jpg did not;
        // c.jpg is gone.
        touch(&source.path().join("a.jpg"), 1, now);
        touch(&source.path().join("b.jpg"), 1, now - 10 * hour);
        touch(&cache.path().join("img/w_1/a.jpg.jpg"), 100, now - hour);
        touch(&cache.path().join("img/w_1/b.jpg.jpg"), 100, now - 3 * hour);
        touch(&cache.path().join("img/w_2/b.jpg.webp"), 100, now - 2 * hour);
        touch(&cache.path().join("img/w_1/c.jpg.png"), 100, now - hour);
        touch(
            &cache.path().join("img/w_1/.b.jpg.jpg.7.0.tmp"),
            5,
            now - 2 * hour,
        );

        let swept = sweep(cache.path(), source.path(), 150).unwrap();
        assert_eq!(
            swept,
            Swept {
                stale: 1,
                orphaned: 1,
                evicted: 1,
                temporary: 1,
                kept: 1,
                kept_bytes: 100
            }
        );
        // Of the two fresh derivatives, the one read longest ago went.
        assert!(!cache.path().join("img/w_1/b.jpg.jpg").exists());
        assert!(cache.path().join("img/w_2/b.jpg.webp").exists());
        // What was emptied is gone; what holds a derivative stays.
        assert!(!cache.path().join("img/w_1").exists());
        assert!(cache.path().join("img/w_2").exists());
    }
}
