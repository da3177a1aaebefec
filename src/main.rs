//! The `portcullis` command: `run` (default), `check`, `--version`.
//! The only place errors become exit codes: 2 for configuration and usage, 1 for the rest.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc malloc was ~13 % of the proxy's CPU under load (docs/benchmarks.md); mimalloc's
/// thread-local free lists make Pingora's per-request allocations much cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use portcullis::app::{self, RunOptions};
use portcullis::config::{self, ConfigError, ProcessEnv};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Backend-for-Frontend security gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run {
        #[arg(long, short, default_value = "conf/portcullis.toml")]
        config: PathBuf,
        /// Take over the listeners of a running instance (zero-downtime upgrade).
        #[arg(long, short)]
        upgrade: bool,
        /// Run in the background.
        #[arg(long, short)]
        daemon: bool,
    },
    /// Validate the configuration and print it with secrets masked.
    Check {
        #[arg(long, short, default_value = "conf/portcullis.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run {
        config: PathBuf::from("conf/portcullis.toml"),
        upgrade: false,
        daemon: false,
    });
    match command {
        Command::Check { config } => match config::load(&config, &ProcessEnv) {
            Ok(cfg) => {
                for warning in cfg.warnings() {
                    eprintln!("warning: {warning}");
                }
                print!("{}", cfg.to_toml());
                eprintln!("{}: configuration is valid", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => config_failure(&e),
        },
        Command::Run {
            config,
            upgrade,
            daemon,
        } => {
            let cfg = match config::load(&config, &ProcessEnv) {
                Ok(cfg) => cfg,
                Err(e) => return config_failure(&e),
            };
            portcullis::telemetry::init(&cfg.log);
            match app::run(cfg, RunOptions { upgrade, daemon }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("portcullis: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprint!("portcullis: {e}");
    if !e.to_string().ends_with('\n') {
        eprintln!();
    }
    ExitCode::from(2)
}
