//! The `imgworker` command: arguments, configuration, hand-off.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imgworker::config::Config;
use imgworker::signing::{self, Signer};
use imgworker::source::SourcePath;
use imgworker::{logging, master, sweep};

/// The packaged configuration file, the default of every command but serve.
const DEFAULT_CONFIG: &str = "/etc/imgworker/imgworker.toml";

#[derive(Parser)]
#[command(version, about = "An image server behind Nginx, over FastCGI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the master and its pool of workers.
    Serve(ServeArgs),
    /// Remove every derivative of the originals named (paths under the
    /// source root), in all options and formats.
    Purge {
        #[command(flatten)]
        roots: RootArgs,
        /// Paths of originals, relative to the source root.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove derivatives whose original changed or is gone, then the
    /// least recently used until the cache is under `cache_max_bytes`.
    Sweep {
        #[command(flatten)]
        roots: RootArgs,
        /// Size bound in bytes (overrides `cache_max_bytes`).
        #[arg(long)]
        max_bytes: Option<u64>,
    },
    /// Print URL signed with the first of `signing_keys`.
    Sign {
        /// Configuration file (TOML) holding `signing_keys`.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// A URL or path such as /img/w_300,f_webp/photos/a.jpg.
        url: String,
    },
    /// Check a configuration file and exit, like `nginx -t`.
    CheckConfig {
        /// The file to check.
        #[arg(default_value = DEFAULT_CONFIG)]
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML); without it, built-in defaults.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Unix socket to listen on (overrides `socket`).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Directory of originals (overrides `source_root`).
    #[arg(long)]
    source_root: Option<PathBuf>,
    /// Directory of derivatives that Nginx serves (overrides `cache_root`).
    #[arg(long)]
    cache_root: Option<PathBuf>,
    /// Worker processes (overrides `workers`; 0 = one per CPU).
    #[arg(long)]
    workers: Option<usize>,
}

/// Where purge and sweep find the trees: the config file, or flags.
#[derive(clap::Args)]
struct RootArgs {
    /// Configuration file (TOML).
    #[arg(short, long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Directory of originals (overrides `source_root`).
    #[arg(long)]
    source_root: Option<PathBuf>,
    /// Directory of derivatives (overrides `cache_root`).
    #[arg(long)]
    cache_root: Option<PathBuf>,
}

impl RootArgs {
    /// The config file if it exists (flags may stand in for it), with the
    /// flags on top.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = if self.config.exists() || self.cache_root.is_none() {
            Config::load(&self.config)?
        } else {
            Config::default()
        };
        if let Some(root) = &self.source_root {
            config.source_root = absolute(root.clone())?;
        }
        if let Some(root) = &self.cache_root {
            config.cache_root = absolute(root.clone())?;
        }
        // Flags over the file: overlapping roots would sweep originals.
        config.check().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            logging::init();
            match serve(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    log::error!("{err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Purge { roots, paths } => report(purge(&roots, &paths)),
        Command::Sweep { roots, max_bytes } => {
            report(sweep(&roots, max_bytes))
        }
        Command::Sign { config, url } => report(sign(&config, &url)),
        Command::CheckConfig { file } => {
            match Config::load(&file).and_then(|c| {
                c.check_paths().map_err(|reason| {
                    imgworker::config::ConfigError::new(format!(
                        "{}: {reason}",
                        file.display()
                    ))
                })
            }) {
                Ok(()) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints a one-line result, or the error, for the cache commands.
fn report(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("imgworker: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn purge(roots: &RootArgs, paths: &[String]) -> anyhow::Result<String> {
    let config = roots.config()?;
    let mut removed = 0;
    for path in paths {
        let original = SourcePath::new(path.trim_start_matches('/'))
            .map_err(|reason| anyhow::anyhow!("{path}: {reason}"))?;
        removed += sweep::purge(&config.cache_root, original.as_str())?;
    }
    Ok(format!("purged originals={} derivatives={removed}", paths.len()))
}

fn sweep(roots: &RootArgs, max_bytes: Option<u64>) -> anyhow::Result<String> {
    let config = roots.config()?;
    let max = max_bytes.unwrap_or(config.cache_max_bytes);
    let swept = sweep::sweep(&config.cache_root, &config.source_root, max)?;
    Ok(format!(
        "swept stale={} orphaned={} evicted={} temporary={} kept={} kept_bytes={}",
        swept.stale,
        swept.orphaned,
        swept.evicted,
        swept.temporary,
        swept.kept,
        swept.kept_bytes
    ))
}

fn sign(path: &std::path::Path, url: &str) -> anyhow::Result<String> {
    let config = Config::load(path)?;
    let signer = Signer::new(&config.signing_keys);
    if !signer.enabled() {
        anyhow::bail!("{}: signing_keys: no key to sign with", path.display());
    }
    signing::sign_url(&signer, url).ok_or_else(|| {
        anyhow::anyhow!(
            "{url}: expected /<prefix>/<options>/<path of the original>"
        )
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // The other commands read the packaged file by default; serve does not,
    // so that flags alone give a known configuration. Say so when that
    // file is there, in case it was meant.
    if args.config.is_none() && Path::new(DEFAULT_CONFIG).exists() {
        log::warn!(
            "serve without --config uses built-in defaults; {DEFAULT_CONFIG} \
             is not read"
        );
    }
    // Flags are kept and applied again over the file on every reload.
    let socket = args.socket;
    let source_root = args.source_root.map(absolute).transpose()?;
    let cache_root = args.cache_root.map(absolute).transpose()?;
    let workers = args.workers;
    let apply_flags = move |config: &mut Config| -> anyhow::Result<()> {
        if let Some(socket) = &socket {
            config.socket = socket.clone();
        }
        if let Some(root) = &source_root {
            config.source_root = root.clone();
        }
        if let Some(root) = &cache_root {
            config.cache_root = root.clone();
        }
        if let Some(workers) = workers {
            config.workers = workers;
        }
        Ok(())
    };
    master::run(master::ConfigSource {
        file: args.config,
        apply_flags: Box::new(apply_flags),
    })
}

/// Command-line roots may be relative; the configuration keeps them
/// absolute, as Nginx must name the same directory.
fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}
