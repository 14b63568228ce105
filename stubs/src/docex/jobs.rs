//! Search jobs: how a job is born (profile or default rule), how its status moves with time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::archive::ArchiveKind;
use crate::config::DocexConfig;
use crate::idempotency::Keys;
use crate::journal::{Journal, instant, wall};
use crate::util::{mix, stable_hash};

/// Overrides the default rule for one patient (by first and last name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// Documents (archive entries) each job finds, 0 to 3000.
    pub documents: u32,
    /// What the archive holds.
    pub kind: ArchiveKind,
    /// Time from queued to finished; `None`: drawn from the configured range.
    pub job_ms: Option<u64>,
    /// The first this-many jobs for the patient, counted from when the profile
    /// was set, end as `failed`.
    pub fail_jobs: u32,
    /// Keep the job `running` this long (after a short queue), e.g. an hour.
    pub running_ms: Option<u64>,
}

impl Profile {
    /// Checks what a JSON body may get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.documents > 3000 {
            return Err(format!("documents {} is more than 3000", self.documents));
        }
        Ok(())
    }
}

/// A job's status, as the API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Finished,
    Failed,
}

/// Where a job's archive is.
#[derive(Clone, Debug)]
pub(crate) enum Archive {
    /// The job found nothing or failed: there is no archive.
    NotNeeded,
    /// Being written in the background.
    Generating,
    /// On disk since `at`.
    Ready { path: PathBuf, bytes: u64, at: Instant },
    /// Writing it failed; the job reports `failed`.
    Broken,
    /// Deleted after its time to live (or never written before shutdown).
    Gone,
}

#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub id: String,
    pub kind: ArchiveKind,
    pub documents: u32,
    pub running_at: Instant,
    pub done_at: Instant,
    pub fails: bool,
    pub archive: Archive,
}

impl Job {
    /// The status at `now`; a job whose archive is still being written stays `running`.
    pub fn status(&self, now: Instant) -> JobStatus {
        if now < self.running_at {
            JobStatus::Queued
        } else if now < self.done_at {
            JobStatus::Running
        } else if self.fails {
            JobStatus::Failed
        } else {
            match self.archive {
                Archive::Generating => JobStatus::Running,
                Archive::Broken => JobStatus::Failed,
                _ => JobStatus::Finished,
            }
        }
    }

    /// When the job finished, which starts its archive's time to live.
    pub fn finished_at(&self) -> Instant {
        match self.archive {
            Archive::Ready { at, .. } => at.max(self.done_at),
            _ => self.done_at,
        }
    }
}

/// What a new job needs written: `documents` entries of `kind` from `seed`.
pub(crate) struct Order {
    pub job_id: String,
    pub kind: ArchiveKind,
    pub documents: u32,
    pub seed: u64,
}

/// What DocEx journals: every job and profile, replayed in order at start.
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    Job {
        id: String,
        kind: ArchiveKind,
        documents: u32,
        running_at_ms: u64,
        done_at_ms: u64,
        fails: bool,
        needs_archive: bool,
        key: Option<String>,
        at_ms: u64,
        /// The profile it was started under, which counts it.
        profile: Option<(String, String)>,
    },
    Profile {
        first: String,
        last: String,
        profile: Profile,
    },
}

/// All jobs, remembered keys and profiles.
pub(crate) struct Jobs {
    pub map: HashMap<String, Job>,
    pub keys: Keys<String, String>,
    /// Profile and how many jobs it has started, by (first, last).
    pub profiles: HashMap<(String, String), (Profile, u32)>,
    pub replays: u64,
    journal: Journal,
}

impl Jobs {
    pub fn new(journal: Journal) -> Self {
        Jobs { map: HashMap::new(), keys: Keys::new(), profiles: HashMap::new(), replays: 0, journal }
    }

    /// The jobs a journal's events describe (archives still to be looked
    /// for: `Generating` where one is needed), journalling on into `journal`.
    pub fn replay(events: Vec<Event>, journal: Journal) -> Self {
        let mut jobs = Jobs::new(journal);
        for e in events {
            match e {
                Event::Job {
                    id,
                    kind,
                    documents,
                    running_at_ms,
                    done_at_ms,
                    fails,
                    needs_archive,
                    key,
                    at_ms,
                    profile,
                } => {
                    if let Some((_, started)) = profile.and_then(|p| jobs.profiles.get_mut(&p)) {
                        *started += 1;
                    }
                    if let Some(k) = key {
                        jobs.keys.insert(k, id.clone(), instant(at_ms));
                    }
                    let archive = if needs_archive { Archive::Generating } else { Archive::NotNeeded };
                    let job = Job {
                        id: id.clone(),
                        kind,
                        documents,
                        running_at: instant(running_at_ms),
                        done_at: instant(done_at_ms),
                        fails,
                        archive,
                    };
                    jobs.map.insert(id, job);
                }
                Event::Profile { first, last, profile } => {
                    jobs.profiles.insert((first, last), (profile, 0));
                }
            }
        }
        jobs
    }

    /// Overrides the default rule for one patient; restarts its `fail_jobs` count.
    pub fn set_profile(&mut self, first: &str, last: &str, p: Profile) {
        self.journal.append(&Event::Profile { first: first.to_owned(), last: last.to_owned(), profile: p.clone() });
        self.profiles.insert((first.to_owned(), last.to_owned()), (p, 0));
    }

    /// Starts a job for the patient, or returns the job an earlier request with
    /// the same key started. The order is `Some` when an archive must be written.
    pub fn start(
        &mut self,
        cfg: &DocexConfig,
        first: &str,
        last: &str,
        key: Option<String>,
        now: Instant,
    ) -> (String, Option<Order>) {
        if let Some(id) = key.as_ref().and_then(|k| self.keys.get(k, now)) {
            self.replays += 1;
            return (id, None);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let names = (first.to_owned(), last.to_owned());
        let profiled = self.profiles.contains_key(&names);
        let (kind, documents, total, running, fails) = match self.profiles.get_mut(&names) {
            Some((p, started)) => {
                *started += 1;
                let total = p.job_ms.map(Duration::from_millis).unwrap_or_else(|| cfg.job_time.draw(&mut rand::rng()));
                let running = p.running_ms.map(Duration::from_millis);
                (p.kind, p.documents, total, running, *started <= p.fail_jobs)
            }
            None => {
                let total = cfg.job_time.draw(&mut rand::rng());
                (cfg.archive_kind, default_documents(cfg, first, last), total, None, false)
            }
        };
        // A quarter of the time queued, the rest running (unless a profile pins it).
        let queued = total / 4;
        let running = running.unwrap_or(total - queued);
        let needs_archive = !fails && documents > 0;
        let job = Job {
            id: id.clone(),
            kind,
            documents,
            running_at: now + queued,
            done_at: now + queued + running,
            fails,
            archive: if needs_archive { Archive::Generating } else { Archive::NotNeeded },
        };
        self.journal.append(&Event::Job {
            id: id.clone(),
            kind,
            documents,
            running_at_ms: wall(job.running_at),
            done_at_ms: wall(job.done_at),
            fails,
            needs_archive,
            key: key.clone(),
            at_ms: wall(now),
            profile: profiled.then_some(names),
        });
        self.map.insert(id.clone(), job);
        if let Some(k) = key {
            self.keys.insert(k, id.clone(), now);
        }
        let order = needs_archive.then(|| Order { job_id: id.clone(), kind, documents, seed: stable_hash(&[&id]) });
        (id, order)
    }
}

/// The default rule: a share of patients has nothing, the rest a count from
/// the configured range, both decided by a hash of the names.
pub fn default_documents(cfg: &DocexConfig, first: &str, last: &str) -> u32 {
    let h = stable_hash(&[first, last]);
    if ((h % 1_000_000) as f64) < cfg.empty_share * 1_000_000.0 {
        return 0;
    }
    cfg.docs.pick(mix(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_moves_from_queued_to_running_to_finished_with_time() {
        let cfg = DocexConfig::default();
        let mut jobs = Jobs::new(Journal::none());
        let t0 = Instant::now();
        jobs.profiles.insert(("A".into(), "B".into()), (Profile { job_ms: Some(400), ..Profile::default() }, 0));
        let (id, order) = jobs.start(&cfg, "A", "B", None, t0);
        assert!(order.is_none(), "no documents, no archive");
        let job = &jobs.map[&id];
        assert_eq!(job.status(t0), JobStatus::Queued);
        assert_eq!(job.status(t0 + Duration::from_millis(150)), JobStatus::Running);
        assert_eq!(job.status(t0 + Duration::from_millis(400)), JobStatus::Finished);
    }

    #[test]
    fn the_default_rule_is_stable_and_honours_the_empty_share() {
        let cfg = DocexConfig { empty_share: 1.0, ..DocexConfig::default() };
        assert_eq!(default_documents(&cfg, "Ann", "Lee"), 0);
        let cfg = DocexConfig { empty_share: 0.0, ..DocexConfig::default() };
        let n = default_documents(&cfg, "Ann", "Lee");
        assert_eq!(n, default_documents(&cfg, "Ann", "Lee"));
        assert!(n <= 12);
    }
}
