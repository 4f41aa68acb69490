//! The `imgworker` command: arguments, configuration, hand-off.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imgworker::config::Config;
use imgworker::{logging, master};

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
    /// Check a configuration file and exit, like `nginx -t`.
    CheckConfig {
        /// The file to check.
        #[arg(default_value = "/etc/imgworker/imgworker.toml")]
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
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(socket) = args.socket {
        config.socket = socket;
    }
    if let Some(root) = args.source_root {
        config.source_root = absolute(root)?;
    }
    if let Some(root) = args.cache_root {
        config.cache_root = absolute(root)?;
    }
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    config.check().map_err(anyhow::Error::msg)?;
    master::run(config)
}

/// Command-line roots may be relative; the configuration keeps them
/// absolute, as Nginx must name the same directory.
fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}
