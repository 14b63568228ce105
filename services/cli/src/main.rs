//! `docket`: the operator's tool. Seed demo patients, publish requests in
//! batches and priorities, see a patient's run or a batch's progress and
//! finish, pause, resume or cancel work, wait for it to finish, read
//! reports, replay parked messages and run finished runs again. It reads the
//! same settings as the services.

mod batches;
mod control;
mod demo;
mod parked;
mod publish;
mod rerun;
mod reset;
mod seed;
mod status;

use clap::{Args, Parser, Subcommand};
use docket_shared::{
    Settings,
    run::{
        Priority,
        control::{Action, Scope},
    },
    settings::duration,
    telemetry,
};

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
        /// The batch the requests belong to (default: `default`).
        #[arg(long)]
        batch: Option<String>,
        /// urgent, normal (the default) or bulk.
        #[arg(long)]
        priority: Option<String>,
    },
    /// Show a patient's latest run (stage, documents, last error, history),
    /// or with --batch one batch's progress and estimated finish.
    Status {
        patient_id: Option<String>,
        #[arg(long, conflicts_with = "patient_id")]
        batch: Option<String>,
    },
    /// Every batch: runs waiting, working, finished, paused, cancelled, and
    /// when it will be done.
    Batches,
    /// Pause a batch, a patient or everything: no outside call from the commit on.
    Pause(Target),
    /// Resume what a pause stopped: runs go on from the step they were at.
    Resume(Target),
    /// Cancel a batch, a patient or everything: each run ends with a report saying so.
    Cancel(Target),
    /// Run again the patients whose last run finished and matches the filters.
    Rerun {
        /// Patient IDs.
        ids: Vec<String>,
        #[command(flatten)]
        filters: Filters,
        /// Only runs that were cancelled.
        #[arg(long)]
        cancelled: bool,
        /// The new runs' priority (default: the old run's).
        #[arg(long)]
        priority: Option<String>,
        /// List what would run again; publish nothing.
        #[arg(long)]
        dry_run: bool,
    },
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
    /// Send parked messages back to the queue they came from: by ID, by
    /// filters (which combine), or all.
    Replay {
        /// Message IDs to replay (from `parked list`).
        ids: Vec<String>,
        /// Replay every parked message.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filters: Filters,
    },
}

/// The filters `rerun` and `parked replay` share; given together, all must match.
#[derive(Args)]
struct Filters {
    /// Only this batch's runs (rerun) or requests and runs (replay).
    #[arg(long)]
    batch: Option<String>,
    /// Text in the reason: a document's failure or the run's last error
    /// (rerun), the parking reason (replay). Case-insensitive.
    #[arg(long)]
    reason: Option<String>,
    /// Finished (rerun) or parked (replay) no longer ago than this (e.g. 12h).
    #[arg(long)]
    since: Option<String>,
}

impl Filters {
    fn since(&self) -> anyhow::Result<Option<std::time::Duration>> {
        self.since.as_deref().map(|t| duration(t).map_err(|e| anyhow::anyhow!("--since: {e}"))).transpose()
    }
}

/// What a control covers: exactly one of these.
#[derive(Args)]
struct Target {
    #[arg(long)]
    batch: Option<String>,
    #[arg(long = "patient")]
    patient_id: Option<String>,
    #[arg(long)]
    all: bool,
}

impl Target {
    fn scope(self) -> anyhow::Result<Scope> {
        Scope::pick(self.all, self.batch, self.patient_id)
            .map_err(|e| anyhow::anyhow!("{e} (--batch NAME, --patient ID or --all)"))
    }
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
        Command::Publish { ids, file, demo, batch, priority } => {
            publish::run(&settings, publish::Publish { ids, file, demo, batch, priority }).await
        }
        Command::Status { batch: Some(batch), .. } => batches::show(&settings, &batch).await,
        Command::Status { patient_id: Some(patient_id), .. } => status::patient(&settings, &patient_id).await,
        Command::Status { .. } => anyhow::bail!("give a patient ID, or --batch NAME"),
        Command::Batches => batches::list(&settings).await,
        Command::Pause(target) => control::apply(&settings, Action::Pause, target.scope()?).await,
        Command::Resume(target) => control::apply(&settings, Action::Resume, target.scope()?).await,
        Command::Cancel(target) => control::apply(&settings, Action::Cancel, target.scope()?).await,
        Command::Rerun { ids, filters, cancelled, priority, dry_run } => {
            let priority =
                priority.map(|p| Priority::parse(&p).map_err(|e| anyhow::anyhow!("--priority: {e}"))).transpose()?;
            let within = filters.since()?;
            let Filters { batch, reason, .. } = filters;
            let filter = rerun::Filter { ids, batch, reason, since: within, cancelled };
            rerun::run(&settings, filter, priority, dry_run).await
        }
        Command::Runs => status::runs(&settings).await,
        Command::Wait { timeout } => status::wait_command(&settings, &timeout).await,
        Command::Report { patient_id } => status::report(&settings, &patient_id).await,
        Command::Demo { patients } => demo::run(&settings, patients).await,
        Command::Reset { yes } => reset::run(&settings, yes).await,
        Command::Parked { action: ParkedAction::List { limit } } => parked::list(&settings, limit).await,
        Command::Parked { action: ParkedAction::Replay { ids, all, filters } } => {
            let within = filters.since()?;
            let Filters { batch, reason, .. } = filters;
            parked::replay(&settings, parked::Filter { ids, all, batch, reason, since: within }).await
        }
    }
}
