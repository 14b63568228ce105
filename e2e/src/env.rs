//! One isolated pipeline: vhost, database, Redis prefix, directories, stubs
//! and the settings every stage of this test reads.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use docket_shared::{
    settings::{Settings, Vars},
    {db::Db, run::Run},
};
use docket_stubs::{DocexConfig, DocexHandle, TaskTrackerConfig, TaskTrackerHandle};
use sqlx::PgPool;

use crate::{rabbit, stages::Started};

/// The machine's PostgreSQL, shared by every test.
const SHARED_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
const ADMIN_DB: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What a test changes about its pipeline.
pub struct TestOptions {
    pub docex: DocexConfig,
    pub tracker: TaskTrackerConfig,
    /// Settings on top of the time-scaled defaults below.
    pub vars: Vec<(&'static str, String)>,
    /// The PostgreSQL server (URL without a database) the test's database
    /// is created on: the machine's, or a private one the test may stop.
    pub postgres: String,
    /// The broker the test's vhost lives on [the machine's]: a private node
    /// or cluster for tests that stop it.
    pub broker: Option<rabbit::Target>,
}

impl Default for TestOptions {
    /// Budgets scaled up so runs take seconds: DocEx 10 searches+downloads a
    /// second instead of a minute, status and TaskTracker at 50/s.
    fn default() -> Self {
        let docex = DocexConfig {
            search_rate: "600/min".parse().expect("a valid rate"),
            status_rate: "50/s".parse().expect("a valid rate"),
            ..DocexConfig::default()
        };
        let tracker = TaskTrackerConfig { rate: "50/s".parse().expect("a valid rate"), ..TaskTrackerConfig::default() };
        TestOptions { docex, tracker, vars: Vec::new(), postgres: SHARED_POSTGRES.into(), broker: None }
    }
}

impl TestOptions {
    /// The benchmarks' pipeline: the DocEx search+download budget at
    /// `search_rate`, small text archives (a fifth of patients with none),
    /// jobs of half a second to two, quick polls, 50 DocEx jobs at once.
    pub fn bench(search_rate: &str) -> TestOptions {
        let mut o = TestOptions::default();
        o.docex.search_rate = search_rate.parse().expect("a valid rate");
        o.docex.docs = "0..3".parse().expect("a valid range");
        o.docex.empty_share = 0.2;
        o.docex.archive_kind = docket_stubs::ArchiveKind::Text;
        o.docex.job_time = "500ms..2s".parse().expect("a valid range");
        o.vars.push(("DOCEX_MAX_JOBS", "50".into()));
        o.vars.push(("POLL_FIRST", "300ms".into()));
        o.vars.push(("POLL_MAX", "1s".into()));
        o.vars.push(("DATABASE_POOL", "8".into()));
        o
    }
}

pub struct Patient {
    pub id: String,
    pub first: String,
    pub last: String,
}

impl Patient {
    /// A patient with made-up names unique to `id`.
    pub fn new(id: &str) -> Patient {
        Patient { id: id.into(), first: format!("Given{id}"), last: format!("Family{id}") }
    }
}

pub struct TestEnv {
    pub id: String,
    pub vhost: String,
    pub db_name: String,
    pub pool: PgPool,
    pub redis_prefix: String,
    pub dir: tempfile::TempDir,
    pub docex: DocexHandle,
    pub tracker: TaskTrackerHandle,
    pub vars: HashMap<String, String>,
    pub(crate) started: Vec<Started>,
    pub(crate) processes: Vec<std::process::Child>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Names of test resources carry their creation time so a later run can
/// sweep what a crashed one left behind.
pub fn is_stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("docket_t_") else { return false };
    let secs: i64 = rest.split('_').next().and_then(|s| s.parse().ok()).unwrap_or(i64::MAX);
    chrono::Utc::now().timestamp() - secs > 2 * 3600
}

impl TestEnv {
    pub async fn new(options: TestOptions) -> TestEnv {
        tracing_subscriber_init();
        let id = format!(
            "docket_t_{}_{}_{}",
            chrono::Utc::now().timestamp(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sweep().await;
        if let Some(target) = options.broker.clone() {
            rabbit::set_target(&id, target);
        }
        rabbit::create_vhost(&id).await.expect("creating the test's vhost");
        let admin = PgPool::connect(&format!("{}/postgres", options.postgres)).await.expect("connecting to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {id}")).execute(&admin).await.expect("creating the test database");
        admin.close().await;
        let db_url = format!("{}/{id}", options.postgres);
        let pool = PgPool::connect(&db_url).await.expect("connecting to the test database");
        let dir = tempfile::Builder::new().prefix("docket-e2e-").tempdir().expect("a temp dir");
        // The pipeline believes the budgets the stubs enforce.
        let rates = [
            ("DOCEX_SEARCH_RATE", options.docex.search_rate.to_string()),
            ("DOCEX_STATUS_RATE", options.docex.status_rate.to_string()),
            ("TASKTRACKER_RATE", options.tracker.rate.to_string()),
        ];
        let docex = docket_stubs::spawn_docex(options.docex).await.expect("starting the DocEx stub");
        let tracker = docket_stubs::spawn_tasktracker(options.tracker).await.expect("starting the TaskTracker stub");
        let mut vars: HashMap<String, String> = [
            ("AMQP_URL", rabbit::amqp_url(&id)),
            ("DATABASE_URL", db_url),
            ("REDIS_URL", "redis://127.0.0.1:6379/0".into()),
            ("REDIS_KEY_PREFIX", id.clone()),
            ("STORAGE_URL", format!("file://{}/storage", dir.path().display())),
            ("SCRATCH_URL", format!("file://{}/scratch", dir.path().display())),
            ("WORK_DIR", format!("{}/work", dir.path().display())),
            ("DOCEX_URL", docex.url()),
            ("TASKTRACKER_URL", tracker.url()),
            ("DELAY_TIERS", "200ms,1s,5s".into()),
            ("RETRY_BASE", "100ms".into()),
            ("RETRY_MAX", "2s".into()),
            ("POLL_FIRST", "200ms".into()),
            ("POLL_MAX", "2s".into()),
            ("BREAKER_COOLDOWN", "500ms".into()),
            ("BREAKER_COOLDOWN_MAX", "2s".into()),
            ("HTTP_TIMEOUT", "3s".into()),
            ("HTTP_ADDR", "127.0.0.1:0".into()),
            ("SHUTDOWN_GRACE", "5s".into()),
            ("CONVERT_PREFETCH", "2".into()),
            // Tests run side by side with many replicas each; PostgreSQL allows 100 connections.
            ("DATABASE_POOL", "4".into()),
            ("CONVERT_EXE", convert_exe().display().to_string()),
            ("LOG_FORMAT", "text".into()),
        ]
        .into_iter()
        .chain(rates)
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in options.vars {
            vars.insert(k.to_string(), v);
        }
        TestEnv {
            id: id.clone(),
            vhost: id.clone(),
            db_name: id.clone(),
            pool,
            redis_prefix: id,
            dir,
            docex,
            tracker,
            vars,
            started: Vec::new(),
            processes: Vec::new(),
        }
    }

    pub fn settings(&self) -> Settings {
        Settings::from_vars(&Vars::from_map(self.vars.clone())).expect("test settings are valid")
    }

    pub fn storage_root(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn scratch_root(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// Creates the schema and the patients (as any service would at start).
    pub async fn seed(&self, patients: &[Patient]) {
        let db = Db { pool: self.pool.clone() };
        db.migrate().await.expect("migrating the test database");
        for p in patients {
            sqlx::query("INSERT INTO patients (patient_id, first_name, last_name) VALUES ($1, $2, $3)")
                .bind(&p.id)
                .bind(&p.first)
                .bind(&p.last)
                .execute(&self.pool)
                .await
                .expect("seeding a patient");
        }
    }

    pub async fn publish(&self, ids: &[&str]) {
        rabbit::wait_for_queue(&self.vhost, "patients").await;
        for id in ids {
            let body = serde_json::json!({ "patient_id": id }).to_string();
            rabbit::publish_raw(&self.vhost, "patients", body.as_bytes()).await.expect("publishing a request");
        }
    }

    /// Publishes requests in `batch` at `priority` (as `docket publish
    /// --batch --priority` would).
    /// Publishes requests in `batch` at `priority` as `docket publish` does:
    /// urgent ones to the intake's urgent lane, the rest to `patients`.
    pub async fn publish_in(&self, batch: &str, priority: &str, ids: &[&str]) {
        use docket_shared::broker::topology::queues;
        let queue = if priority == "urgent" { queues::PATIENTS_URGENT } else { queues::PATIENTS };
        rabbit::wait_for_queue(&self.vhost, queue).await;
        let bodies: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| serde_json::json!({ "patient_id": id, "batch": batch, "priority": priority }).to_string().into())
            .collect();
        rabbit::publish_many(&self.vhost, queue, &bodies).await.expect("publishing requests");
    }

    pub async fn runs(&self, patient_id: &str) -> Vec<Run> {
        sqlx::query_as("SELECT * FROM docket.runs WHERE patient_id = $1 ORDER BY created_at")
            .bind(patient_id)
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default()
    }

    /// Waits until `n` runs have finished; fails with the states seen.
    pub async fn wait_finished(&self, n: i64, deadline: Duration) {
        crate::wait::within(deadline, Duration::from_millis(250), "runs finished", || async {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, count(*) FROM docket.runs GROUP BY state ORDER BY state")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| e.to_string())?;
            let done: i64 = rows.iter().filter(|(s, _)| s == "done").map(|(_, c)| c).sum();
            if done >= n { Ok(()) } else { Err(format!("{rows:?}")) }
        })
        .await
    }

    /// Stops every in-process stage and process, then removes the vhost,
    /// database, Redis keys and directories.
    pub async fn cleanup(mut self) {
        self.stop_all().await;
        let (vhost, db, prefix) = (self.vhost.clone(), self.db_name.clone(), self.redis_prefix.clone());
        self.pool.close().await;
        drop_resources(&vhost, &db, &prefix).await;
    }
}

impl Drop for TestEnv {
    /// A failed test still removes what it made; processes die with it.
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.kill();
            let _ = p.wait();
        }
        for s in &self.started {
            s.token.cancel();
        }
    }
}

fn tracing_subscriber_init() {
    docket_shared::telemetry::init(docket_shared::settings::LogFormat::Text);
}

/// The docket-convert binary of this build (built by the test script):
/// beside a benchmark binary, or one level up from a test binary in `deps/`.
pub fn convert_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe.parent().expect("a binary lives in a directory");
    let beside = dir.join("docket-convert");
    if beside.exists() {
        return beside;
    }
    dir.parent().map(Path::to_path_buf).unwrap_or_default().join("docket-convert")
}

pub async fn drop_resources(vhost: &str, db: &str, prefix: &str) {
    let _ = rabbit::delete_vhost(vhost).await;
    if let Ok(admin) = PgPool::connect(ADMIN_DB).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).execute(&admin).await;
        admin.close().await;
    }
    if let Ok(client) = redis::Client::open("redis://127.0.0.1:6379/0")
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await.unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}

/// Removes test vhosts and databases that crashed runs left behind.
async fn sweep() {
    for vhost in rabbit::stale_vhosts().await.unwrap_or_default() {
        drop_resources(&vhost, &vhost, &vhost).await;
    }
    if let Ok(admin) = PgPool::connect(ADMIN_DB).await {
        let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'docket_t_%'")
            .fetch_all(&admin)
            .await
            .unwrap_or_default();
        for name in names.into_iter().filter(|n| is_stale(n)) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
        }
        admin.close().await;
    }
}
