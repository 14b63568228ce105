//! The stubs' state on disk (`STUB_DATA_DIR`): an append-only journal of what
//! each stub created, replayed at start, so jobs, tasks and reports outlive a
//! restart as the real systems' do. Without a data dir, state is in memory only.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::util::lock;

/// Where events go; `none()` keeps nothing.
pub(crate) struct Journal {
    file: Option<Mutex<File>>,
}

impl Journal {
    pub fn none() -> Journal {
        Journal { file: None }
    }

    /// Opens (or creates) the journal at `path` and reads back its events. A
    /// line that does not parse (the stub was killed while writing it) is
    /// skipped with a warning.
    pub fn open<E: DeserializeOwned>(path: &Path) -> anyhow::Result<(Journal, Vec<E>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the stub's journal {}", path.display()))?;
        let mut events = Vec::new();
        for (n, line) in BufReader::new(&file).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            match serde_json::from_str(&line) {
                Ok(e) => events.push(e),
                Err(e) if !line.trim().is_empty() => {
                    tracing::warn!(path = %path.display(), line = n + 1, error = %e, "skipping an unreadable journal line")
                }
                Err(_) => {}
            }
        }
        // A line cut short by a kill must not swallow the next event.
        let len = file.seek(SeekFrom::End(0))?;
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok((Journal { file: Some(Mutex::new(file)) }, events))
    }

    /// Appends one event. A failed write is logged: the stub goes on in memory.
    pub fn append<E: Serialize>(&self, event: &E) {
        let Some(file) = &self.file else { return };
        let mut line = match serde_json::to_vec(event) {
            Ok(l) => l,
            Err(e) => return tracing::warn!(error = %e, "cannot encode a journal event"),
        };
        line.push(b'\n');
        if let Err(e) = lock(file).write_all(&line) {
            tracing::warn!(error = %e, "cannot write to the stub's journal; this change will not survive a restart");
        }
    }
}

/// `at` as milliseconds since the Unix epoch (what survives a restart).
pub(crate) fn wall(at: Instant) -> u64 {
    let now = Instant::now();
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let ms = if at >= now { epoch + (at - now) } else { epoch.saturating_sub(now - at) };
    ms.as_millis() as u64
}

/// The instant of a wall-clock time in milliseconds; a time before this
/// machine's monotonic clock began (before a reboot) becomes now.
pub(crate) fn instant(ms: u64) -> Instant {
    let now = Instant::now();
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let then = Duration::from_millis(ms);
    if then >= epoch { now + (then - epoch) } else { now.checked_sub(epoch - then).unwrap_or(now) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_survive_the_trip_through_wall_clock_time() {
        let t = Instant::now() + Duration::from_secs(5);
        let back = instant(wall(t));
        let diff = if back > t { back - t } else { t - back };
        assert!(diff < Duration::from_millis(5), "{diff:?}");
    }

    #[test]
    fn a_line_cut_short_is_skipped_and_the_next_event_is_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("j.jsonl");
        std::fs::write(&path, "{\"n\":1}\n{\"n\":").expect("write");
        let (j, events) = Journal::open::<serde_json::Value>(&path).expect("open");
        assert_eq!(events.len(), 1);
        j.append(&serde_json::json!({"n": 2}));
        drop(j);
        let (_, events) = Journal::open::<serde_json::Value>(&path).expect("reopen");
        assert_eq!(events, vec![serde_json::json!({"n": 1}), serde_json::json!({"n": 2})]);
    }
}
