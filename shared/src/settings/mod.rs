//! Every setting, read from the environment once at start and validated; a bad
//! value stops the service with a message that names the setting.

mod parse;

pub use parse::{Rate, amqp_address, amqp_urls, byte_size, duration, duration_list};

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

/// A value that must never be printed: tokens and URLs with passwords.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Json,
    Text,
}

/// The whole configuration of a docket process. Field docs give the
/// environment variable, the unit and the default.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `AMQP_URL` [amqp://guest:guest@127.0.0.1:5672/%2f]: RabbitMQ; a
    /// comma-separated list for the nodes of a cluster (each URL with its
    /// own credentials and vhost). Connections rotate through the list.
    pub amqp_urls: Vec<Secret>,
    /// `REDIS_URL` [redis://127.0.0.1:6379/0]: the limiter's and breakers' home.
    pub redis_url: Secret,
    /// `REDIS_KEY_PREFIX` [docket]: prefix of every Redis key, so that two
    /// deployments (or two tests) can share one Redis.
    pub redis_key_prefix: String,
    /// `DATABASE_URL` [postgres://postgres@127.0.0.1:5432/postgres].
    pub database_url: Secret,
    /// `DATABASE_POOL` [10]: connections per process at most.
    pub database_pool: u32,
    /// `STORAGE_URL` [file://$PWD/var/storage]: `file:///dir` or `s3://bucket/prefix`.
    pub storage_url: String,
    /// `SCRATCH_URL` [file://$PWD/var/scratch]: bytes in flight between stages;
    /// every stage must see the same scratch store.
    pub scratch_url: String,
    /// `AWS_*` (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, …): options of `s3://` stores.
    pub aws: Vec<(String, Secret)>,
    /// `WORK_DIR` [$TMPDIR/docket]: local disk for downloads and conversions.
    pub work_dir: PathBuf,
    /// `DOCEX_URL` [http://127.0.0.1:9000] and `DOCEX_TOKEN` [none].
    pub docex_url: String,
    pub docex_token: Option<Secret>,
    /// `TASKTRACKER_URL` [http://127.0.0.1:9001] and `TASKTRACKER_TOKEN` [none].
    pub tasktracker_url: String,
    pub tasktracker_token: Option<Secret>,
    /// `DOCEX_SEARCH_RATE` [10/min]: searches and archive downloads together.
    pub docex_search_rate: Rate,
    /// `DOCEX_STATUS_RATE` [10/s]: job-status reads.
    pub docex_status_rate: Rate,
    /// `TASKTRACKER_RATE` [10/s]: every TaskTracker request.
    pub tasktracker_rate: Rate,
    /// `LIMIT_MARGIN` [100ms]: slack added to each budget window so jitter
    /// between a slot and the request's arrival never overfills a window.
    /// It must cover `LIMIT_LATE` plus the time from the send to the arrival.
    pub limit_margin: Duration,
    /// `LIMIT_LATE` [20ms]: a caller that would send later than this after
    /// its reserved slot (it was descheduled, under a CPU limit say) gives
    /// the slot up and reserves again, rather than crowd the next ones.
    pub limit_late: Duration,
    /// `LIMIT_MAX_HOLD` [60s]: a caller whose slot is further away than this
    /// sends its message through a delay queue instead of holding it.
    pub limit_max_hold: Duration,
    /// `DOCEX_MAX_JOBS` [30]: DocEx jobs between search and archive download.
    pub docex_max_jobs: u32,
    /// `HTTP_TIMEOUT` [10s]: one outside request; for archive downloads, the
    /// longest pause between two chunks.
    pub http_timeout: Duration,
    /// `BREAKER_THRESHOLD` [5]: consecutive failures that open a breaker.
    pub breaker_threshold: u32,
    /// `BREAKER_COOLDOWN` [2s] .. `BREAKER_COOLDOWN_MAX` [10s]: how long an open
    /// breaker waits before letting one probe through, doubling per failed probe.
    pub breaker_cooldown: Duration,
    pub breaker_cooldown_max: Duration,
    /// `DELAY_TIERS` [1s,5s,30s,2min,10min]: the delay queues' TTLs.
    pub delay_tiers: Vec<Duration>,
    /// `RETRY_BASE` [1s] .. `RETRY_MAX` [60s]: capped exponential backoff of
    /// transient failures, with jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// `POLL_FIRST` [2s] .. `POLL_MAX` [60s]: the job-status polling schedule,
    /// doubling from the first delay to the cap.
    pub poll_first: Duration,
    pub poll_max: Duration,
    /// `DELIVERY_LIMIT` [20]: deliveries after which a message that keeps
    /// killing its consumer is parked by the broker itself.
    pub delivery_limit: u32,
    /// `PREFETCH` [per stage]: messages in flight per consumer of this process.
    pub prefetch: Option<u16>,
    /// `CONVERT_PREFETCH` [from cores, memory and the measured cost of a slot]: conversions in
    /// flight per convert instance.
    pub convert_prefetch: Option<u16>,
    /// `CONVERT_WINDOW` [64]: documents at the converters at once, fleet-wide
    /// (queued or converting); the rest wait in the conversion room in its
    /// order (priority, then batches in turn). Keep it at least the fleet's
    /// conversion slots (convert replicas × CONVERT_PREFETCH), and at least
    /// KEDA's per-replica target × its maximum replicas, or KEDA cannot see
    /// the backlog.
    pub convert_window: u32,
    /// `CONVERT_MEMORY_LIMIT` [1GiB]: address-space cap of one conversion.
    pub convert_memory_limit: u64,
    /// `CONVERT_TIMEOUT` [120s]: wall-clock cap of one conversion.
    pub convert_timeout: Duration,
    /// `CONVERT_EXE` [the running docket-convert]: the binary whose `child`
    /// mode runs one conversion and whose `office-worker` mode keeps
    /// LibreOffice warm (tests running the stage in-process set it).
    pub convert_exe: Option<PathBuf>,
    /// `CONVERT_OFFICE_MAX_DOCS` [200]: documents an office worker converts
    /// before it is replaced by a fresh one.
    pub convert_office_max_docs: u32,
    /// `CONVERT_OFFICE_MAX_RSS` [768MiB]: resident memory past which an office
    /// worker is replaced after its document.
    pub convert_office_max_rss: u64,
    /// `CONVERT_DOC_MAX_DOCS` [1000]: documents a doc worker (the warm
    /// process that judges every document and converts all but office ones)
    /// converts before it is replaced by a fresh one.
    pub convert_doc_max_docs: u32,
    /// `CONVERT_DOC_MAX_RSS` [256MiB]: resident memory past which a doc
    /// worker is replaced after its document (memory its allocator kept
    /// after a large image, say).
    pub convert_doc_max_rss: u64,
    /// `ARCHIVE_MAX_BYTES` [4GiB]: the most one archive may download or unpack to.
    pub archive_max_bytes: u64,
    /// `ARCHIVE_MAX_ENTRIES` [5000]: entries extracted from one archive.
    pub archive_max_entries: usize,
    /// `ENTRY_MAX_BYTES` [256MiB]: the largest single extracted file.
    pub entry_max_bytes: u64,
    /// `HTTP_ADDR` [0.0.0.0:91xx, one port per service]: /metrics, /healthz, /readyz.
    pub http_addr: Option<SocketAddr>,
    /// `SHUTDOWN_GRACE` [30s]: how long SIGTERM waits for in-flight messages.
    pub shutdown_grace: Duration,
    /// `LOG_FORMAT` [auto]: auto, json or text.
    pub log_format: LogFormat,
}

/// Where settings come from: the process environment, or a map in tests
/// (which run many pipelines in one process and must not share `std::env`).
pub struct Vars(HashMap<String, String>);

impl Vars {
    pub fn from_env() -> Vars {
        Vars(std::env::vars().collect())
    }
    pub fn from_map(map: HashMap<String, String>) -> Vars {
        Vars(map)
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }
    fn with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> =
            self.0.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect();
        found.sort();
        found
    }
    fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }
    fn parsed<T>(&self, name: &str, default: &str, parse: impl Fn(&str) -> Result<T, String>) -> anyhow::Result<T> {
        let raw = self.get(name).unwrap_or(default);
        parse(raw).map_err(|why| anyhow::anyhow!("setting {name}: {why}"))
    }
    fn optional<T>(&self, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> anyhow::Result<Option<T>> {
        self.get(name).map(|raw| parse(raw).map_err(|why| anyhow::anyhow!("setting {name}: {why}"))).transpose()
    }
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("expected a whole number, got {text:?}"))
}

fn url(text: &str) -> Result<String, String> {
    url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    Ok(text.trim_end_matches('/').to_string())
}

fn store_url(text: &str) -> Result<String, String> {
    let parsed = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    match parsed.scheme() {
        "file" | "s3" => Ok(text.to_string()),
        other => Err(format!("scheme {other:?} is not supported; use file:///dir or s3://bucket/prefix")),
    }
}

fn log_format(text: &str) -> Result<LogFormat, String> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(LogFormat::Auto),
        "json" => Ok(LogFormat::Json),
        "text" | "pretty" => Ok(LogFormat::Text),
        _ => Err(format!("expected auto, json or text, got {text:?}")),
    }
}

impl Settings {
    /// Reads and validates the process environment.
    pub fn from_env() -> anyhow::Result<Settings> {
        Settings::from_vars(&Vars::from_env())
    }

    pub fn from_vars(v: &Vars) -> anyhow::Result<Settings> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let local = |dir: &str| format!("file://{}", cwd.join("var").join(dir).display());
        let secret = |name: &str, default: &str| Secret::new(v.text(name, default));
        let settings = Settings {
            amqp_urls: v
                .parsed("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f", amqp_urls)?
                .into_iter()
                .map(Secret::new)
                .collect(),
            redis_url: secret("REDIS_URL", "redis://127.0.0.1:6379/0"),
            redis_key_prefix: v.text("REDIS_KEY_PREFIX", "docket"),
            database_url: secret("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
            database_pool: v.parsed("DATABASE_POOL", "10", number)?,
            storage_url: v.parsed("STORAGE_URL", &local("storage"), store_url)?,
            scratch_url: v.parsed("SCRATCH_URL", &local("scratch"), store_url)?,
            aws: v.with_prefix("AWS_").into_iter().map(|(k, val)| (k, Secret::new(val))).collect(),
            work_dir: v.get("WORK_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("docket")),
            docex_url: v.parsed("DOCEX_URL", "http://127.0.0.1:9000", url)?,
            docex_token: v.get("DOCEX_TOKEN").map(Secret::new),
            tasktracker_url: v.parsed("TASKTRACKER_URL", "http://127.0.0.1:9001", url)?,
            tasktracker_token: v.get("TASKTRACKER_TOKEN").map(Secret::new),
            docex_search_rate: v.parsed("DOCEX_SEARCH_RATE", "10/min", Rate::parse)?,
            docex_status_rate: v.parsed("DOCEX_STATUS_RATE", "10/s", Rate::parse)?,
            tasktracker_rate: v.parsed("TASKTRACKER_RATE", "10/s", Rate::parse)?,
            limit_margin: v.parsed("LIMIT_MARGIN", "100ms", duration)?,
            limit_late: v.parsed("LIMIT_LATE", "20ms", duration)?,
            limit_max_hold: v.parsed("LIMIT_MAX_HOLD", "60s", duration)?,
            docex_max_jobs: v.parsed("DOCEX_MAX_JOBS", "30", number)?,
            http_timeout: v.parsed("HTTP_TIMEOUT", "10s", duration)?,
            breaker_threshold: v.parsed("BREAKER_THRESHOLD", "5", number)?,
            breaker_cooldown: v.parsed("BREAKER_COOLDOWN", "2s", duration)?,
            breaker_cooldown_max: v.parsed("BREAKER_COOLDOWN_MAX", "10s", duration)?,
            delay_tiers: v.parsed("DELAY_TIERS", "1s,5s,30s,2min,10min", duration_list)?,
            retry_base: v.parsed("RETRY_BASE", "1s", duration)?,
            retry_max: v.parsed("RETRY_MAX", "60s", duration)?,
            poll_first: v.parsed("POLL_FIRST", "2s", duration)?,
            poll_max: v.parsed("POLL_MAX", "60s", duration)?,
            delivery_limit: v.parsed("DELIVERY_LIMIT", "20", number)?,
            prefetch: v.optional("PREFETCH", number)?,
            convert_prefetch: v.optional("CONVERT_PREFETCH", number)?,
            convert_window: v.parsed("CONVERT_WINDOW", "64", number)?,
            convert_memory_limit: v.parsed("CONVERT_MEMORY_LIMIT", "1GiB", byte_size)?,
            convert_timeout: v.parsed("CONVERT_TIMEOUT", "120s", duration)?,
            convert_exe: v.get("CONVERT_EXE").map(PathBuf::from),
            convert_office_max_docs: v.parsed("CONVERT_OFFICE_MAX_DOCS", "200", number)?,
            convert_office_max_rss: v.parsed("CONVERT_OFFICE_MAX_RSS", "768MiB", byte_size)?,
            convert_doc_max_docs: v.parsed("CONVERT_DOC_MAX_DOCS", "1000", number)?,
            convert_doc_max_rss: v.parsed("CONVERT_DOC_MAX_RSS", "256MiB", byte_size)?,
            archive_max_bytes: v.parsed("ARCHIVE_MAX_BYTES", "4GiB", byte_size)?,
            archive_max_entries: v.parsed("ARCHIVE_MAX_ENTRIES", "5000", number)?,
            entry_max_bytes: v.parsed("ENTRY_MAX_BYTES", "256MiB", byte_size)?,
            http_addr: v.optional("HTTP_ADDR", |s| s.parse().map_err(|_| format!("expected host:port, got {s:?}")))?,
            shutdown_grace: v.parsed("SHUTDOWN_GRACE", "30s", duration)?,
            log_format: v.parsed("LOG_FORMAT", "auto", log_format)?,
        };
        settings.check()?;
        Ok(settings)
    }

    /// Relations between settings that no single parser can see.
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.database_pool > 0, "setting DATABASE_POOL: must be at least 1");
        anyhow::ensure!(self.docex_max_jobs > 0, "setting DOCEX_MAX_JOBS: must be at least 1");
        // basic.qos with 0 would mean no limit at all, not none.
        anyhow::ensure!(self.prefetch != Some(0), "setting PREFETCH: must be at least 1");
        anyhow::ensure!(self.convert_prefetch != Some(0), "setting CONVERT_PREFETCH: must be at least 1");
        anyhow::ensure!(self.delivery_limit > 1, "setting DELIVERY_LIMIT: must be at least 2");
        anyhow::ensure!(self.convert_window > 0, "setting CONVERT_WINDOW: must be at least 1");
        anyhow::ensure!(
            self.retry_base <= self.retry_max,
            "settings RETRY_BASE and RETRY_MAX: the base must not exceed the cap"
        );
        anyhow::ensure!(
            self.poll_first <= self.poll_max,
            "settings POLL_FIRST and POLL_MAX: the first delay must not exceed the cap"
        );
        anyhow::ensure!(
            self.breaker_cooldown <= self.breaker_cooldown_max,
            "settings BREAKER_COOLDOWN and BREAKER_COOLDOWN_MAX: the cooldown must not exceed its cap"
        );
        anyhow::ensure!(
            self.convert_memory_limit >= 64 << 20,
            "setting CONVERT_MEMORY_LIMIT: below 64MiB no conversion can start"
        );
        anyhow::ensure!(self.convert_office_max_docs > 0, "setting CONVERT_OFFICE_MAX_DOCS: must be at least 1");
        anyhow::ensure!(self.convert_doc_max_docs > 0, "setting CONVERT_DOC_MAX_DOCS: must be at least 1");
        if let Some(exe) = &self.convert_exe {
            anyhow::ensure!(exe.is_file(), "setting CONVERT_EXE: {} does not exist", exe.display());
        }
        // The broker takes a channel away from a consumer that holds a message
        // longer than consumer_timeout (30 min by default).
        anyhow::ensure!(
            self.convert_timeout < Duration::from_secs(25 * 60),
            "setting CONVERT_TIMEOUT: keep it well under RabbitMQ's 30-minute consumer_timeout"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_map(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn defaults_follow_the_brief() {
        let s = Settings::from_vars(&vars(&[])).expect("defaults are valid");
        assert_eq!(s.docex_search_rate.to_string(), "10/min");
        assert_eq!(s.convert_memory_limit, 1 << 30);
        assert_eq!((s.convert_doc_max_docs, s.convert_doc_max_rss), (1000, 256 << 20));
        assert!(s.storage_url.starts_with("file://"));
    }

    #[test]
    fn a_bad_value_names_its_setting() {
        let err = Settings::from_vars(&vars(&[("DOCEX_STATUS_RATE", "fast")])).expect_err("invalid");
        assert!(err.to_string().contains("DOCEX_STATUS_RATE"), "{err}");
        let err = Settings::from_vars(&vars(&[("STORAGE_URL", "ftp://x/y")])).expect_err("invalid");
        assert!(err.to_string().contains("STORAGE_URL"), "{err}");
        for name in ["PREFETCH", "CONVERT_PREFETCH"] {
            let err = Settings::from_vars(&vars(&[(name, "0")])).expect_err("a prefetch of 0 means unlimited");
            assert!(err.to_string().contains(name), "{err}");
        }
        for name in ["CONVERT_OFFICE_MAX_DOCS", "CONVERT_DOC_MAX_DOCS"] {
            let err = Settings::from_vars(&vars(&[(name, "0")])).expect_err("a worker must convert something");
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = Settings::from_vars(&vars(&[("CONVERT_DOC_MAX_RSS", "lots")])).expect_err("invalid");
        assert!(err.to_string().contains("CONVERT_DOC_MAX_RSS"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::from_vars(&vars(&[("DOCEX_TOKEN", "hunter2")])).expect("valid");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s:?}").contains("guest:guest"));
        let s = Settings::from_vars(&vars(&[("AMQP_URL", "amqp://u:pw1@a/%2f,amqp://u:pw2@b/%2f")])).expect("valid");
        assert_eq!(s.amqp_urls.len(), 2);
        assert!(!format!("{s:?}").contains("pw1") && !format!("{s:?}").contains("pw2"));
        let err = Settings::from_vars(&vars(&[("AMQP_URL", "amqp://u:pw1@a/%2f,ftp://b")])).expect_err("invalid");
        assert!(err.to_string().contains("AMQP_URL") && !err.to_string().contains("pw1"), "{err}");
    }
}
