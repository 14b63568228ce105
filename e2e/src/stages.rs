//! Starting stages: in-process (the real service code, each replica with its
//! own connections, on port 0) or as the real binaries (to SIGKILL them).

use std::{process::Stdio, sync::Arc, time::Duration};

use docket_shared::{App, Service, broker::Consumer};
use tokio_util::sync::CancellationToken;

use crate::env::TestEnv;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Search,
    Status,
    Fetch,
    Convert,
    Store,
    Report,
}

pub const ALL: [Stage; 6] = [Stage::Search, Stage::Status, Stage::Fetch, Stage::Convert, Stage::Store, Stage::Report];

type Build = fn(&Arc<App>) -> Vec<Arc<dyn Consumer>>;

impl Stage {
    fn parts(self) -> (Service, Build) {
        match self {
            Stage::Search => (docket_search::service(), docket_search::consumers),
            Stage::Status => (docket_status::service(), docket_status::consumers),
            Stage::Fetch => (docket_fetch::service(), docket_fetch::consumers),
            Stage::Convert => (docket_convert::stage::service(), docket_convert::stage::consumers),
            Stage::Store => (docket_store::service(), docket_store::consumers),
            Stage::Report => (docket_report::service(), docket_report::consumers),
        }
    }

    pub fn binary(self) -> &'static str {
        match self {
            Stage::Search => "docket-search",
            Stage::Status => "docket-status",
            Stage::Fetch => "docket-fetch",
            Stage::Convert => "docket-convert",
            Stage::Store => "docket-store",
            Stage::Report => "docket-report",
        }
    }
}

/// An in-process replica.
pub struct Started {
    pub stage: Stage,
    pub token: CancellationToken,
    pub app: Arc<App>,
    pub http_addr: std::net::SocketAddr,
    done: tokio::task::JoinHandle<()>,
}

impl TestEnv {
    /// Starts `replicas` in-process replicas of `stage`.
    pub async fn start(&mut self, stage: Stage, replicas: usize) {
        for _ in 0..replicas {
            let (service, build) = stage.parts();
            let token = CancellationToken::new();
            let running = service.start(self.settings(), token.clone(), build).await.expect("starting a stage");
            let (app, http_addr) = (running.app.clone(), running.http_addr);
            let done = tokio::spawn(running.wait());
            self.started.push(Started { stage, token, app, http_addr, done });
        }
    }

    /// Every stage, `replicas` each.
    pub async fn start_all(&mut self, replicas: usize) {
        for stage in ALL {
            self.start(stage, replicas).await;
        }
    }

    /// Stops the in-process replicas of `stage` (SIGTERM-like: drain, then exit).
    pub async fn stop(&mut self, stage: Stage) {
        let (stopping, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.started).into_iter().partition(|s| s.stage == stage);
        self.started = kept;
        for s in &stopping {
            s.token.cancel();
        }
        for s in stopping {
            let _ = tokio::time::timeout(Duration::from_secs(30), s.done).await;
        }
    }

    pub async fn stop_all(&mut self) {
        for p in &mut self.processes {
            let _ = p.kill();
            let _ = p.wait();
        }
        self.processes.clear();
        for stage in ALL {
            self.stop(stage).await;
        }
    }

    /// Starts the real binary of `stage` with this test's settings; returns
    /// its index for [`TestEnv::kill`].
    pub fn spawn_process(&mut self, stage: Stage) -> usize {
        let exe = crate::env::convert_exe().with_file_name(stage.binary());
        assert!(exe.exists(), "{} is not built; run `cargo build --bins` first", exe.display());
        let log =
            std::fs::File::create(self.dir.path().join(format!("{}-{}.log", stage.binary(), self.processes.len())))
                .expect("a log file");
        let child = std::process::Command::new(exe)
            .envs(&self.vars)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning a stage binary");
        self.processes.push(child);
        self.processes.len() - 1
    }

    /// The `/metrics` text of the spawned process `index` (a `stage`), from
    /// the address in its log (the tests give port 0); empty if unreadable.
    pub async fn process_metrics(&self, stage: Stage, index: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(format!("{}-{index}.log", stage.binary())))
            .unwrap_or_default();
        // The tests bind 127.0.0.1 (the log may colour the field's name).
        let Some(port) = log.split("http_addr").nth(1).and_then(|rest| {
            let after = rest.split("127.0.0.1:").nth(1)?;
            after.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u16>().ok()
        }) else {
            return String::new();
        };
        match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(answer) => answer.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The operating-system id of a spawned stage process.
    pub fn process_id(&self, index: usize) -> u32 {
        self.processes[index].id()
    }

    /// The spawned processes that have exited, with how: a process restarted
    /// by nobody must still be the one spawned, so this stays empty.
    pub fn exited_processes(&mut self) -> Vec<(usize, std::process::ExitStatus)> {
        let mut exited = Vec::new();
        for (i, p) in self.processes.iter_mut().enumerate() {
            if let Ok(Some(status)) = p.try_wait() {
                exited.push((i, status));
            }
        }
        exited
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self, index: usize) {
        let p = &mut self.processes[index];
        let _ = p.kill();
        let _ = p.wait();
    }

    /// The in-process replicas started so far.
    pub fn replicas(&self, stage: Stage) -> Vec<&Started> {
        self.started.iter().filter(|s| s.stage == stage).collect()
    }
}

/// The sum of the samples in a `/metrics` text whose series starts with
/// `series` (a name, or a name and its labels as rendered); NaN if none.
pub fn metric(text: &str, series: &str) -> f64 {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(series))
        .filter(|rest| rest.starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    if values.is_empty() { f64::NAN } else { values.iter().sum() }
}
