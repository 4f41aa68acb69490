//! Log lines: one per event, to standard error.
//!
//! Under systemd (`JOURNAL_STREAM` set) each line starts with its syslog
//! priority (`<3>`, sd-daemon(3)) and carries no timestamp, because the
//! journal adds its own; elsewhere lines carry a UTC timestamp. The level
//! is `RUST_LOG` when it is set; otherwise the config's `log_level`, which
//! [`set_level`] can change on reload.

use std::io::Write;

pub fn init() {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let mut builder = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("trace"),
    );
    builder.format(move |buf, record| {
        if journald {
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(buf, "<{priority}>{}", record.args())
        } else {
            writeln!(
                buf,
                "{} {:<5} {}",
                buf.timestamp_millis(),
                record.level(),
                record.args()
            )
        }
    });
    builder.init();
    if !from_env {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// Applies the config's `log_level`, unless `RUST_LOG` decides.
pub fn set_level(level: log::LevelFilter) {
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(level);
    }
}
