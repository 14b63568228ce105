//! The `docket-stubs` binary: runs the fake DocEx, the fake TaskTracker, or both, from environment settings.

use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use docket_stubs::{DocexConfig, TaskTrackerConfig, spawn_docex, spawn_tasktracker};
use tracing_subscriber::EnvFilter;

/// Fake DocumentExchange and TaskTracker for tests, benchmarks and demos.
///
/// Every setting comes from the environment; see stubs/README.md.
#[derive(Parser)]
#[command(name = "docket-stubs", version, after_help = SETTINGS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const SETTINGS: &str = "Settings (environment): DOCEX_SEARCH_RATE [10/min], DOCEX_STATUS_RATE [10/s], \
TASKTRACKER_RATE [10/s], DOCEX_TOKEN, TASKTRACKER_TOKEN, STUB_DOCEX_ADDR [127.0.0.1:9000], \
STUB_TASKTRACKER_ADDR [127.0.0.1:9001], STUB_JOB_TIME [2s..8s], STUB_DOCS [0..12], STUB_EMPTY_SHARE [0.2], \
STUB_ARCHIVE_KIND [mixed], STUB_ARCHIVE_TTL [1h], STUB_DATA_DIR, STUB_FAULTS, STUB_DOCEX_FAULTS, \
STUB_TASKTRACKER_FAULTS, RUST_LOG [info]. See stubs/README.md.";

#[derive(Subcommand)]
enum Command {
    /// The DocumentExchange stub (STUB_DOCEX_ADDR, default 127.0.0.1:9000).
    Docex,
    /// The TaskTracker stub (STUB_TASKTRACKER_ADDR, default 127.0.0.1:9001).
    Tasktracker,
    /// Both in one process.
    All,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logs();
    if let Err(e) = run(cli.command).await {
        eprintln!("docket-stubs: {e:#}");
        std::process::exit(2);
    }
}

/// Human-readable logs on a terminal, JSON lines otherwise (compose, k8s), on stderr.
fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        logs.init();
    } else {
        logs.json().init();
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    // Read every setting before starting anything, so a bad value stops us at once.
    let docex_cfg = matches!(command, Command::Docex | Command::All).then(DocexConfig::from_env).transpose()?;
    let tracker_cfg =
        matches!(command, Command::Tasktracker | Command::All).then(TaskTrackerConfig::from_env).transpose()?;
    let docex = match docex_cfg {
        Some(c) => Some(spawn_docex(c).await?),
        None => None,
    };
    let tracker = match tracker_cfg {
        Some(c) => Some(spawn_tasktracker(c).await?),
        None => None,
    };
    wait_for_signal().await;
    tracing::info!("stopping");
    if let Some(d) = docex {
        d.shutdown().await;
    }
    if let Some(t) = tracker {
        t.shutdown().await;
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (what docker and kubernetes send).
async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the stubs");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
