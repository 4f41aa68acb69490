//! The configuration file and its defaults.
//!
//! One TOML file maps onto [`Config`]; every key has a default here, in
//! code, so an empty file is a working configuration. Unknown keys are
//! errors: a misspelt key silently ignored is worse than a refusal. Errors
//! read `file: key: reason`, in the manner of `nginx -t`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How damaged an original may be before it is refused, from libvips'
/// `fail_on` levels: `warning` refuses anything the decoder complained
/// about (truncated files, corrupt scans), `error` and `truncated` let more
/// through and serve what could be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    Warning,
    Error,
    Truncated,
}

impl FailOn {
    pub fn as_vips(self) -> &'static str {
        match self {
            FailOn::Warning => "warning",
            FailOn::Error => "error",
            FailOn::Truncated => "truncated",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Unix socket the master listens on and Nginx connects to.
    /// Ignored when systemd passes a socket (`LISTEN_FDS`).
    /// Default: `/run/imgworker/imgworker.sock`.
    pub socket: PathBuf,
    /// Permissions of a socket the master creates, as an octal string.
    /// Default: `"0660"` (the owner and its group, which should be
    /// Nginx's).
    pub socket_mode: String,
    /// Connections that may wait for a free worker in a socket the master
    /// binds (systemd's socket unit sets its own `Backlog=`). Past it,
    /// Nginx answers 503. The kernel caps it at net.core.somaxconn.
    /// Default: 1024.
    pub listen_backlog: i32,
    /// Directory of originals. URLs name files beneath it; nothing outside
    /// it is ever opened. Default: `/srv/images`.
    pub source_root: PathBuf,
    /// Directory of derivatives, the same directory the Nginx snippet
    /// serves hits from. Default: `/var/cache/imgworker`.
    pub cache_root: PathBuf,
    /// Worker processes. Default: 0, meaning one per CPU.
    pub workers: usize,
    /// Seconds a stopping pool waits for requests in flight before it
    /// kills the workers. Default: 30.
    pub shutdown_timeout_s: u64,
    /// libvips threads per worker. Default: 1: on a busy server one
    /// process per core, each single-threaded, does more work than fewer
    /// processes sharing threads.
    pub vips_concurrency: i32,
    /// Formats of originals taken, by name: jpeg, png, webp, gif, avif,
    /// heic, tiff, svg. Others are answered 415. SVG is off by default:
    /// its loader is a large parser of a text format. ImageMagick's
    /// formats (BMP, ICO, PSD, …) and PDF are never read.
    /// Default: all but svg.
    pub input_formats: Vec<String>,
    /// Frames of an animated GIF or WebP kept when the output animates
    /// too; an animation with more is answered 422. Default: 100.
    pub max_frames: u32,
    /// Largest original, in bytes. Default: 52428800 (50 MiB).
    pub max_source_bytes: u64,
    /// Largest original, in pixels, checked from the header before any
    /// decoding. Default: 100000000 (100 MP).
    pub max_source_pixels: u64,
    /// Largest derivative, in pixels (width × height), checked before any
    /// decoding. Default: 25000000 (25 MP).
    pub max_output_pixels: u64,
    /// Largest width or height a URL may ask for, in pixels.
    /// Default: 4096.
    pub max_output_side: u32,
    /// How damaged an original may be. Default: `"warning"`.
    pub fail_on: FailOn,
    /// Quality of JPEG output when the URL has no `q_`, 1–100. Default: 80.
    pub jpeg_quality: u8,
    /// Quality of WebP output when the URL has no `q_`, 1–100. Default: 80.
    pub webp_quality: u8,
    /// Quality of AVIF output when the URL has no `q_`, 1–100. Default: 55.
    pub avif_quality: u8,
    /// Flush each derivative to disk before it becomes visible, so a power
    /// cut cannot leave an empty file where Nginx looks. Default: true.
    pub cache_fsync: bool,
    /// Requests a worker answers before it retires and a fresh one takes
    /// its place, give or take 10 %, so a leak in a native decoder cannot
    /// grow without bound. 0: never. Default: 10000.
    pub max_requests: u64,
    /// Resident memory, in MiB, above which a worker retires after its
    /// request. 0: no limit. Default: 512.
    pub max_rss_mb: u64,
    /// Size the cache tree is kept under by `imgworker sweep`, in bytes;
    /// least recently used derivatives go first. Default: 0, no bound.
    pub cache_max_bytes: u64,
    /// Keys for signed URLs, newest first; URLs are signed with the first
    /// and accepted with any. Empty: signing off. Each at least 16 bytes.
    /// Default: none.
    pub signing_keys: Vec<String>,
    /// Glide's sign key, when the site's Glide URLs are signed (`s=`);
    /// they are then checked as Glide checks them. Default: none.
    pub glide_sign_key: Option<String>,
    /// With true, URLs may only name presets (`p_<name>`). Default: false.
    pub presets_only: bool,
    /// Sizes a URL may write with `w_`/`h_`: `"300x200"`, `"300x"` (width
    /// only), `"x200"`. Empty: any size up to the limits. Default: empty.
    pub allowed_sizes: Vec<String>,
    /// Named option sets: `thumb = "w_150,h_150,fit_cover"` makes
    /// `p_thumb` stand for those options. A table, so it comes last in
    /// the file. Default: none.
    pub presets: std::collections::BTreeMap<String, String>,
    /// The pool's name on the status page. Default: `"imgworker"`.
    pub pool_name: String,
    /// Least important log lines kept: `error`, `warn`, `info`, `debug`
    /// or `trace`. `RUST_LOG`, when set, wins. Default: `"info"`.
    pub log_level: String,
    /// Seconds a worker may spend on one request before the master kills
    /// it (that request gets a 503 from Nginx; a new worker takes the
    /// slot). Default: 60.
    pub request_time_limit_s: u64,
    /// Requests slower than this, in milliseconds, are counted as slow on
    /// the status page. Default: 1000.
    pub slow_request_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: PathBuf::from("/run/imgworker/imgworker.sock"),
            socket_mode: "0660".to_string(),
            listen_backlog: 1024,
            source_root: PathBuf::from("/srv/images"),
            cache_root: PathBuf::from("/var/cache/imgworker"),
            workers: 0,
            shutdown_timeout_s: 30,
            vips_concurrency: 1,
            input_formats: [
                "jpeg", "png", "webp", "gif", "avif", "heic", "tiff",
            ]
            .map(String::from)
            .to_vec(),
            max_frames: 100,
            max_source_bytes: 50 * 1024 * 1024,
            max_source_pixels: 100_000_000,
            max_output_pixels: 25_000_000,
            max_output_side: 4096,
            fail_on: FailOn::Warning,
            jpeg_quality: 80,
            webp_quality: 80,
            avif_quality: 55,
            cache_fsync: true,
            max_requests: 10_000,
            max_rss_mb: 512,
            cache_max_bytes: 0,
            signing_keys: Vec::new(),
            glide_sign_key: None,
            presets_only: false,
            allowed_sizes: Vec::new(),
            presets: std::collections::BTreeMap::new(),
            pool_name: "imgworker".to_string(),
            log_level: "info".to_string(),
            request_time_limit_s: 60,
            slow_request_ms: 1000,
        }
    }
}

/// Most workers in a pool: a reload runs two generations side by side in
/// the scoreboard's slots.
pub const MAX_WORKERS: usize = crate::scoreboard::MAX_SLOTS / 2;

/// A configuration that cannot be used, with where and why.
#[derive(Debug)]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: String) -> ConfigError {
        ConfigError(message)
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigError(format!("{}: cannot read: {err}", path.display()))
        })?;
        let config = Config::parse(&text).map_err(|err| {
            ConfigError(format!("{}: {err}", path.display()))
        })?;
        Ok(config)
    }

    /// Parses and checks configuration text; errors read `key: reason`.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|err| {
            // toml's message spans several lines with a source excerpt;
            // the first line and the key are what a sysadmin needs.
            let line = plain_types(err.message().lines().next().unwrap_or(""));
            match err.span() {
                Some(span) => {
                    let start = span.start.min(text.len());
                    let at = text[..start].matches('\n').count() + 1;
                    // The key on that line, when the error is its value's.
                    let source_line = text.lines().nth(at - 1).unwrap_or("");
                    let key = source_line
                        .split_once('=')
                        .map(|(key, _)| key.trim())
                        .filter(|key| !key.is_empty() && !line.contains(key));
                    match key {
                        Some(key) => format!("line {at}: {key}: {line}"),
                        None => format!("line {at}: {line}"),
                    }
                }
                None => line,
            }
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    pub fn check(&self) -> Result<(), String> {
        self.socket_mode_bits()?;
        let quality = [
            ("jpeg_quality", self.jpeg_quality),
            ("webp_quality", self.webp_quality),
            ("avif_quality", self.avif_quality),
        ];
        for (key, value) in quality {
            if !(1..=100).contains(&value) {
                return Err(format!(
                    "{key}: {value} is not between 1 and 100"
                ));
            }
        }
        if self.log_level().is_none() {
            return Err(format!(
                "log_level: {:?} is not one of error, warn, info, debug, trace",
                self.log_level
            ));
        }
        for (n, key) in self.signing_keys.iter().enumerate() {
            if key.len() < crate::signing::MIN_KEY_BYTES {
                return Err(format!(
                    "signing_keys: key {} is {} bytes; use at least {} random \
                     bytes (openssl rand -hex 32)",
                    n + 1,
                    key.len(),
                    crate::signing::MIN_KEY_BYTES
                ));
            }
        }
        if self.input_formats.is_empty() {
            return Err("input_formats: is empty, so every request would be \
                        refused; list at least one format"
                .into());
        }
        for name in &self.input_formats {
            if crate::transform::output::SourceFormat::parse(name).is_none() {
                return Err(format!(
                    "input_formats: {name:?} is not one of jpeg, png, webp, \
                     gif, avif, heic, tiff, svg"
                ));
            }
        }
        crate::transform::Rules::from_config(self)
            .check(&self.allowed_sizes)?;
        if self.listen_backlog < 1 {
            return Err("listen_backlog: must be at least 1".into());
        }
        if self.request_time_limit_s == 0 {
            return Err("request_time_limit_s: must be at least 1".into());
        }
        if self.pool_name.is_empty()
            || !self
                .pool_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(format!(
                "pool_name: {:?} may hold letters, digits, '.', '_' and '-'",
                self.pool_name
            ));
        }
        if self.workers > MAX_WORKERS {
            return Err(format!(
                "workers: {} is more than {MAX_WORKERS}",
                self.workers
            ));
        }
        if self.max_output_pixels == 0 {
            return Err("max_output_pixels: must be at least 1".into());
        }
        if self.max_output_side == 0 {
            return Err("max_output_side: must be at least 1".to_string());
        }
        if !(1..=64).contains(&self.vips_concurrency) {
            return Err("vips_concurrency: must be between 1 and 64".into());
        }
        for (key, path) in [
            ("source_root", &self.source_root),
            ("cache_root", &self.cache_root),
        ] {
            if !path.is_absolute() {
                return Err(format!(
                    "{key}: {} is not an absolute path",
                    path.display()
                ));
            }
        }
        roots_apart(&self.source_root, &self.cache_root)?;
        if self.glide_sign_key.as_deref().is_some_and(|k| k.trim().is_empty())
        {
            return Err(
                "glide_sign_key: is empty, so anyone could sign; set \
                        the site's Glide key, or remove the line"
                    .into(),
            );
        }
        Ok(())
    }

    /// Checks what only this machine can tell: that the roots exist and
    /// that this user may read the one and write the other (or create it).
    /// Run by `check-config` and at start, not when parsing, so that the
    /// service's `ExecStartPre`, which runs as the service's user, refuses
    /// what the workers would fail on.
    pub fn check_paths(&self) -> Result<(), String> {
        use nix::unistd::{AccessFlags, access, getuid};
        let (source, cache) = (&self.source_root, &self.cache_root);
        if !source.exists() {
            return Err(format!(
                "source_root: {} does not exist",
                source.display()
            ));
        }
        if !source.is_dir() {
            return Err(format!(
                "source_root: {} is not a directory",
                source.display()
            ));
        }
        if let Err(errno) =
            access(source, AccessFlags::R_OK | AccessFlags::X_OK)
        {
            return Err(format!(
                "source_root: {}: cannot be read by uid {}: {}",
                source.display(),
                getuid(),
                errno.desc()
            ));
        }
        // A missing cache root is made at start: its nearest existing
        // ancestor must then be a writable directory.
        let existing = cache
            .ancestors()
            .find(|dir| dir.exists())
            .unwrap_or(Path::new("/"));
        if !existing.is_dir() {
            return Err(format!(
                "cache_root: {} is not a directory",
                existing.display()
            ));
        }
        // The same, through symbolic links.
        let real = |path: &Path| path.canonicalize().unwrap_or(path.into());
        let real_cache = match cache.strip_prefix(existing) {
            Ok(rest) => real(existing).join(rest),
            Err(_) => cache.clone(),
        };
        roots_apart(&real(source), &real_cache)?;
        if let Err(errno) =
            access(existing, AccessFlags::W_OK | AccessFlags::X_OK)
        {
            let uid = getuid();
            let errno = errno.desc();
            return Err(if existing == cache.as_path() {
                format!(
                    "cache_root: {}: cannot be written by uid {uid}: {errno}",
                    cache.display()
                )
            } else {
                format!(
                    "cache_root: {} does not exist, and {} cannot be written \
                     by uid {uid} to make it: {errno}",
                    cache.display(),
                    existing.display()
                )
            });
        }
        Ok(())
    }

    /// The socket permissions as bits.
    pub fn socket_mode_bits(&self) -> Result<u32, String> {
        u32::from_str_radix(&self.socket_mode, 8)
            .ok()
            .filter(|bits| *bits <= 0o777)
            .ok_or_else(|| {
                format!(
                    "socket_mode: {:?} is not an octal mode such as \"0660\"",
                    self.socket_mode
                )
            })
    }

    /// `log_level` as a filter.
    pub fn log_level(&self) -> Option<log::LevelFilter> {
        self.log_level.parse().ok()
    }

    /// Worker processes to run: the setting, or one per CPU.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
}

/// Refuses a cache tree that is, holds or lies in the source tree: sweep
/// and purge delete what looks like a derivative under the cache root,
/// and an original named like one (`img/a/b.jpg`) would go with them.
fn roots_apart(source: &Path, cache: &Path) -> Result<(), String> {
    if source.starts_with(cache) || cache.starts_with(source) {
        return Err(format!(
            "cache_root: {} and source_root {} overlap; sweep would delete \
             originals as derivatives. Give the cache a directory of its own",
            cache.display(),
            source.display()
        ));
    }
    Ok(())
}

/// toml names the Rust type it wanted ("expected usize"); a sysadmin
/// reads the kind of value instead.
fn plain_types(message: &str) -> String {
    let mut message = message.to_string();
    for (rust, plain) in [
        ("usize", "a whole number, 0 or more"),
        ("u64", "a whole number, 0 or more"),
        ("u32", "a whole number, 0 or more"),
        ("u16", "a whole number, 0 or more"),
        ("u8", "a whole number, 0 or more"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("f64", "a number"),
        ("f32", "a number"),
    ] {
        message = message.replace(
            &format!("expected {rust}"),
            &format!("expected {plain}"),
        );
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.socket_mode_bits().unwrap(), 0o660);
        assert_eq!(config.max_output_side, 4096);
        assert_eq!(config.fail_on, FailOn::Warning);
    }

    #[test]
    fn keys_override_defaults() {
        let config =
            Config::parse("workers = 3\nsource_root = \"/data\"\n").unwrap();
        assert_eq!(config.worker_count(), 3);
        assert_eq!(config.source_root, PathBuf::from("/data"));
    }

    #[test]
    fn an_unknown_key_is_an_error_that_names_it() {
        let err = Config::parse("wrokers = 3\n").unwrap_err();
        assert!(err.contains("wrokers"), "{err}");
        assert!(err.starts_with("line 1:"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_type_says_what_kind_is_wanted() {
        let err = Config::parse("workers = \"two\"\n").unwrap_err();
        assert!(err.contains("expected a whole number"), "{err}");
        let err = Config::parse("max_rss_mb = 512.5\n").unwrap_err();
        assert!(err.contains("expected a whole number"), "{err}");
        assert!(!err.contains("u64"), "{err}");
        let err = Config::parse("max_frames = -1\n").unwrap_err();
        assert!(err.contains("expected a whole number, 0 or more"), "{err}");
    }

    #[test]
    fn the_cache_tree_never_overlaps_the_originals() {
        for (source, cache) in [
            ("/srv/images", "/srv/images"),
            ("/srv/images", "/srv/images/cache"),
            ("/srv/images/cache/originals", "/srv/images/cache"),
        ] {
            let text =
                format!("source_root = {source:?}\ncache_root = {cache:?}\n");
            let err = Config::parse(&text).unwrap_err();
            assert!(err.starts_with("cache_root: "), "{err}");
            assert!(err.contains("overlap"), "{err}");
        }
        let apart = "source_root = \"/srv/images\"\n\
                     cache_root = \"/srv/images-cache\"\n";
        assert!(Config::parse(apart).is_ok(), "a shared prefix is no overlap");
    }

    #[test]
    fn a_cache_root_reached_through_a_link_into_the_originals_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("originals");
        std::fs::create_dir_all(source.join("inner")).unwrap();
        let link = dir.path().join("cache");
        std::os::unix::fs::symlink(source.join("inner"), &link).unwrap();
        let config = Config {
            source_root: source,
            cache_root: link.join("tree"),
            ..Config::default()
        };
        config.check().unwrap();
        let err = config.check_paths().unwrap_err();
        assert!(err.contains("overlap"), "{err}");
    }

    #[test]
    fn no_input_format_at_all_is_refused() {
        let err = Config::parse("input_formats = []\n").unwrap_err();
        assert!(err.starts_with("input_formats: is empty"), "{err}");
    }

    #[test]
    fn an_empty_glide_key_is_refused() {
        let err = Config::parse("glide_sign_key = \"\"\n").unwrap_err();
        assert!(err.starts_with("glide_sign_key: is empty"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = Config::parse("jpeg_quality = 0\n").unwrap_err();
        assert_eq!(err, "jpeg_quality: 0 is not between 1 and 100");
        let err = Config::parse("socket_mode = \"rw\"\n").unwrap_err();
        assert!(err.starts_with("socket_mode:"), "{err}");
        let err = Config::parse("cache_root = \"cache\"\n").unwrap_err();
        assert!(err.starts_with("cache_root:"), "{err}");
    }

    #[test]
    fn the_shipped_example_is_the_defaults() {
        let text = include_str!("../imgworker.toml");
        let example = Config::parse(text).unwrap();
        // The keys above the [presets] table, uncommented.
        let uncommented: String = text
            .lines()
            .take_while(|l| !l.starts_with("#[presets]"))
            .map(|l| {
                // `#key = value`: a setting; `# …` is prose.
                l.strip_prefix('#')
                    .filter(|l| l.contains(" = ") && !l.starts_with(' '))
                    .unwrap_or("")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let defaults = Config::parse(&uncommented).unwrap();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
        assert_eq!(format!("{example:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let err = Config::parse("workers = \"two\"\n").unwrap_err();
        assert!(err.starts_with("line 1: workers: invalid type"), "{err}");
        let err = Config::parse("workers = 100000\n").unwrap_err();
        assert_eq!(err, "workers: 100000 is more than 256");
        let err = Config::parse("pool_name = 'a\"}b'\n").unwrap_err();
        assert!(err.starts_with("pool_name:"), "{err}");
    }

    #[test]
    fn a_load_error_names_the_file() {
        let err = Config::load(Path::new("/nonexistent/imgworker.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/nonexistent/imgworker.toml: "), "{err}");
    }
}
