//! `docket`: the operator's tool. Seed demo patients, publish requests, see
//! a patient's run, wait for work to finish, read reports, and list or
//! replay parked messages. It reads the same settings as the services.

mod demo;
mod parked;
mod publish;
mod reset;
mod seed;
mod status;

use clap::{Parser, Subcommand};
use docket_shared::{Settings, telemetry};

#[derive(Parser)]
#[command(name = "docket", version, about = "Operate the docket records pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Insert synthetic patients into the patients table (DEMO-00001, …).
    Seed {
        /// How many demo patients.
        #[arg(long)]
        demo: u32,
    },
    /// Publish patient requests to the `patients` queue.
    Publish {
        /// Patient IDs.
        ids: Vec<String>,
        /// Read patient IDs from a file, one per line.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// Publish the first N demo patients.
        #[arg(long)]
        demo: Option<u32>,
    },
    /// Show a patient's latest run: stage, documents done of total, last error, history.
    Status { patient_id: String },
    /// Counts of runs by state, and the runs in progress.
    Runs,
    /// Wait until no run is in progress and the intake queue is empty.
    Wait {
        /// Give up after this long (e.g. 30m).
        #[arg(long, default_value = "2h")]
        timeout: String,
    },
    /// Print a patient's latest report as TaskTracker holds it.
    Report { patient_id: String },
    /// Seed N demo patients, publish them, wait, and print their reports.
    Demo {
        #[arg(long, default_value_t = 6)]
        patients: u32,
    },
    /// Delete every run, the demo patients, docket's queues and its Redis keys (stop the services first).
    Reset {
        /// Really delete.
        #[arg(long)]
        yes: bool,
    },
    /// Parked messages: messages that can never succeed as they are.
    Parked {
        #[command(subcommand)]
        action: ParkedAction,
    },
}

#[derive(Subcommand)]
enum ParkedAction {
    /// List parked messages with their reasons (they stay parked).
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send parked messages back to the queue they came from.
    Replay {
        /// Message IDs to replay (from `parked list`).
        ids: Vec<String>,
        /// Replay every parked message.
        #[arg(long)]
        all: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `docket status P1 | head -1`: a closed pipe ends the CLI quietly, as it
    // does any Unix tool, instead of a panic in println!.
    // SAFETY: restoring the default disposition of one signal before any
    // other thread could depend on it.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    // The CLI's own output is its interface; logs only say what went wrong.
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY of set_var: nothing else runs yet; the runtime's workers do not read the environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RUST_LOG", "warn");
        }
    }
    telemetry::init(docket_shared::settings::LogFormat::Text);
    match cli.command {
        Command::Seed { demo } => seed::demo(&settings, demo).await,
        Command::Publish { ids, file, demo } => publish::run(&settings, ids, file, demo).await,
        Command::Status { patient_id } => status::patient(&settings, &patient_id).await,
        Command::Runs => status::runs(&settings).await,
        Command::Wait { timeout } => status::wait_command(&settings, &timeout).await,
        Command::Report { patient_id } => status::report(&settings, &patient_id).await,
        Command::Demo { patients } => demo::run(&settings, patients).await,
        Command::Reset { yes } => reset::run(&settings, yes).await,
        Command::Parked { action: ParkedAction::List { limit } } => parked::list(&settings, limit).await,
        Command::Parked { action: ParkedAction::Replay { ids, all } } => parked::replay(&settings, ids, all).await,
    }
}
