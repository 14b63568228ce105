//! The two stubs' configurations: test-friendly defaults, and the same read from the environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::archive::ArchiveKind;
use crate::faults::Faults;
use crate::settings::{CountRange, DurationRange, Rate};

/// How the fake DocumentExchange behaves. `Default` suits tests (any free
/// port, jobs of a fraction of a second); [`DocexConfig::from_env`] reads the
/// binary's settings.
#[derive(Clone)]
pub struct DocexConfig {
    /// Listen address. Default `127.0.0.1:0`; env `STUB_DOCEX_ADDR` (default `127.0.0.1:9000`).
    pub addr: SocketAddr,
    /// Bearer token every API request must carry; `None`: no auth. Env `DOCEX_TOKEN`.
    pub token: Option<String>,
    /// Budget shared by searches and archive downloads. Env `DOCEX_SEARCH_RATE` (default `10/min`).
    pub search_rate: Rate,
    /// Budget of job-status reads. Env `DOCEX_STATUS_RATE` (default `10/s`).
    pub status_rate: Rate,
    /// Time from queued to finished, drawn per job. Default 100ms..300ms;
    /// env `STUB_JOB_TIME` (default `2s..8s`).
    pub job_time: DurationRange,
    /// Documents per patient without a profile, picked by a hash of the
    /// names (both ends included). Env `STUB_DOCS` (default `0..12`).
    pub docs: CountRange,
    /// Share (0–1) of patients, by hash of the names, with no documents at
    /// all. Env `STUB_EMPTY_SHARE` (default `0.2`).
    pub empty_share: f64,
    /// What archives hold for patients without a profile. Env `STUB_ARCHIVE_KIND` (default `mixed`).
    pub archive_kind: ArchiveKind,
    /// How long an archive stays downloadable after its job finished; then
    /// 410 and the file is deleted. Env `STUB_ARCHIVE_TTL` (default `1h`).
    pub archive_ttl: Duration,
    /// Where generated archives and the jobs' journal (`docex.jsonl`) are
    /// kept, so jobs survive a restart; `None`: a temporary directory removed
    /// on shutdown, jobs in memory only. Env `STUB_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// Faults applied at start. Env `STUB_DOCEX_FAULTS`, else `STUB_FAULTS` (JSON).
    pub faults: Faults,
}

impl Default for DocexConfig {
    fn default() -> Self {
        DocexConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            search_rate: Rate::per_minute(10),
            status_rate: Rate::per_second(10),
            job_time: DurationRange::new(Duration::from_millis(100), Duration::from_millis(300)),
            docs: CountRange::new(0, 12),
            empty_share: 0.2,
            archive_kind: ArchiveKind::Mixed,
            archive_ttl: Duration::from_secs(3600),
            data_dir: None,
            faults: Faults::none(),
        }
    }
}

impl DocexConfig {
    /// Reads every setting from the process environment; an invalid value is
    /// an error that names the setting.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Like [`DocexConfig::from_env`], reading variables through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let d = DocexConfig::default();
        let empty_share: f64 = setting(&get, "STUB_EMPTY_SHARE", d.empty_share)?;
        if !(0.0..=1.0).contains(&empty_share) {
            return Err(anyhow!("STUB_EMPTY_SHARE={empty_share}: expected a share between 0 and 1"));
        }
        Ok(DocexConfig {
            addr: setting(&get, "STUB_DOCEX_ADDR", SocketAddr::from(([127, 0, 0, 1], 9000)))?,
            token: value(&get, "DOCEX_TOKEN"),
            search_rate: setting(&get, "DOCEX_SEARCH_RATE", d.search_rate)?,
            status_rate: setting(&get, "DOCEX_STATUS_RATE", d.status_rate)?,
            job_time: setting(&get, "STUB_JOB_TIME", DurationRange::new(secs(2), secs(8)))?,
            docs: setting(&get, "STUB_DOCS", d.docs)?,
            empty_share,
            archive_kind: setting(&get, "STUB_ARCHIVE_KIND", d.archive_kind)?,
            archive_ttl: duration(&get, "STUB_ARCHIVE_TTL", d.archive_ttl)?,
            data_dir: value(&get, "STUB_DATA_DIR").map(PathBuf::from),
            faults: faults(&get, "STUB_DOCEX_FAULTS")?,
        })
    }
}

/// How the fake TaskTracker behaves. `Default` suits tests; see [`TaskTrackerConfig::from_env`].
#[derive(Clone)]
pub struct TaskTrackerConfig {
    /// Listen address. Default `127.0.0.1:0`; env `STUB_TASKTRACKER_ADDR` (default `127.0.0.1:9001`).
    pub addr: SocketAddr,
    /// Bearer token every API request must carry; `None`: no auth. Env `TASKTRACKER_TOKEN`.
    pub token: Option<String>,
    /// The one budget every API request spends. Env `TASKTRACKER_RATE` (default `10/s`).
    pub rate: Rate,
    /// Where tasks and reports are kept (`tasktracker.jsonl`) so they survive a
    /// restart; `None`: in memory only. Env `STUB_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// Faults applied at start. Env `STUB_TASKTRACKER_FAULTS`, else `STUB_FAULTS` (JSON).
    pub faults: Faults,
}

impl Default for TaskTrackerConfig {
    fn default() -> Self {
        TaskTrackerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            rate: Rate::per_second(10),
            data_dir: None,
            faults: Faults::none(),
        }
    }
}

impl TaskTrackerConfig {
    /// Reads every setting from the process environment; an invalid value is
    /// an error that names the setting.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Like [`TaskTrackerConfig::from_env`], reading variables through `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let d = TaskTrackerConfig::default();
        Ok(TaskTrackerConfig {
            addr: setting(&get, "STUB_TASKTRACKER_ADDR", SocketAddr::from(([127, 0, 0, 1], 9001)))?,
            token: value(&get, "TASKTRACKER_TOKEN"),
            rate: setting(&get, "TASKTRACKER_RATE", d.rate)?,
            data_dir: value(&get, "STUB_DATA_DIR").map(PathBuf::from),
            faults: faults(&get, "STUB_TASKTRACKER_FAULTS")?,
        })
    }
}

// Tokens are credentials: Debug shows whether one is set, never its value.
impl fmt::Debug for DocexConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocexConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("search_rate", &self.search_rate.to_string())
            .field("status_rate", &self.status_rate.to_string())
            .field("job_time", &self.job_time)
            .field("docs", &self.docs)
            .field("empty_share", &self.empty_share)
            .field("archive_kind", &self.archive_kind)
            .field("archive_ttl", &self.archive_ttl)
            .field("data_dir", &self.data_dir)
            .field("faults", &self.faults)
            .finish()
    }
}

impl fmt::Debug for TaskTrackerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTrackerConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("rate", &self.rate.to_string())
            .field("data_dir", &self.data_dir)
            .field("faults", &self.faults)
            .finish()
    }
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A variable's value; unset and empty both mean "use the default".
fn value(get: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn setting<T>(get: &impl Fn(&str) -> Option<String>, name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match value(get, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e| anyhow!("{name}={v:?} is invalid: {e}")),
    }
}

fn duration(get: &impl Fn(&str) -> Option<String>, name: &str, default: Duration) -> anyhow::Result<Duration> {
    match value(get, name) {
        None => Ok(default),
        Some(v) => humantime::parse_duration(&v).map_err(|e| anyhow!("{name}={v:?} is invalid: {e}")),
    }
}

/// The stub's own fault variable, else the shared `STUB_FAULTS`.
fn faults(get: &impl Fn(&str) -> Option<String>, own: &str) -> anyhow::Result<Faults> {
    let Some((name, json)) = [own, "STUB_FAULTS"].iter().find_map(|n| value(get, n).map(|v| (*n, v))) else {
        return Ok(Faults::none());
    };
    let f: Faults = serde_json::from_str(&json).with_context(|| format!("{name} is not valid faults JSON"))?;
    f.validate().map_err(|e| anyhow!("{name}: {e}"))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_binary_defaults_match_the_world_limits() {
        let c = DocexConfig::from_vars(vars(&[])).expect("defaults are valid");
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.search_rate, Rate::per_minute(10));
        assert_eq!(c.job_time, DurationRange::new(secs(2), secs(8)));
        assert!(c.token.is_none());
        let t = TaskTrackerConfig::from_vars(vars(&[])).expect("defaults are valid");
        assert_eq!((t.addr.port(), t.rate), (9001, Rate::per_second(10)));
    }

    #[test]
    fn an_invalid_setting_is_named_in_the_error() {
        for (name, bad) in [
            ("DOCEX_SEARCH_RATE", "ten a minute"),
            ("STUB_JOB_TIME", "8s..2s"),
            ("STUB_EMPTY_SHARE", "1.5"),
            ("STUB_ARCHIVE_KIND", "zipzap"),
            ("STUB_ARCHIVE_TTL", "forever"),
            ("STUB_FAULTS", "{\"mode\":\"explode\"}"),
        ] {
            let err = DocexConfig::from_vars(vars(&[(name, bad)])).expect_err("invalid value");
            assert!(format!("{err:#}").contains(name), "{name}: {err:#}");
        }
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let c = TaskTrackerConfig { token: Some("s3cret".into()), ..TaskTrackerConfig::default() };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
