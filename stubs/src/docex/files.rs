//! Archive files on disk: written in the background when a job starts, deleted when expired or at shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::jobs::{Archive, JobStatus, Order};
use super::{Docex, JobStats};
use crate::util::lock;

/// Writes a new job's archive on a blocking thread, so it is ready by the time
/// the job finishes; at most `GENERATORS` at once.
pub(super) fn generate(state: Arc<Docex>, order: Order) {
    tokio::spawn(async move {
        let Ok(_permit) = Arc::clone(&state.generators).acquire_owned().await else {
            return;
        };
        if state.shutdown.is_cancelled() {
            return;
        }
        let path = state.dir.join(format!("{}.zip", order.job_id));
        let started = Instant::now();
        let (p, kind, count, seed) = (path.clone(), order.kind, order.documents, order.seed);
        let written = tokio::task::spawn_blocking(move || crate::archive::write_archive(&p, kind, count, seed)).await;
        let archive = match written {
            Ok(Ok(bytes)) => {
                tracing::debug!(job_id = %order.job_id, entries = count, bytes, took_ms = started.elapsed().as_millis() as u64, "archive ready");
                Archive::Ready { path: path.clone(), bytes, at: Instant::now() }
            }
            Ok(Err(e)) => {
                tracing::error!(job_id = %order.job_id, error = %e, "could not write the archive; the job will fail");
                Archive::Broken
            }
            Err(e) => {
                tracing::error!(job_id = %order.job_id, error = %e, "archive writer panicked; the job will fail");
                Archive::Broken
            }
        };
        if state.shutdown.is_cancelled() {
            // Shutdown already deleted the others; this one came too late.
            let _ = std::fs::remove_file(&path);
            return;
        }
        if let Some(job) = lock(&state.jobs).map.get_mut(&order.job_id) {
            job.archive = archive;
        }
    });
}

/// Deletes archives past their time to live, until shutdown.
pub(super) async fn sweep_expired(state: Arc<Docex>) {
    let every = (state.cfg.archive_ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        expire(&state, Instant::now());
    }
}

/// Marks archives past their time to live gone and deletes their files.
pub(super) fn expire(state: &Docex, now: Instant) {
    let ttl = state.cfg.archive_ttl;
    let mut doomed = Vec::new();
    for job in lock(&state.jobs).map.values_mut() {
        if let Archive::Ready { path, .. } = &job.archive
            && now >= job.finished_at() + ttl
        {
            doomed.push(path.clone());
            job.archive = Archive::Gone;
        }
    }
    for path in doomed {
        // A download already streaming keeps its open file; unlinking is safe.
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not delete an expired archive");
        }
    }
}

/// Deletes what this stub was writing, and every archive it wrote unless
/// they are to be kept for the next start (the default temp dir goes with the state).
pub(super) fn delete_all(state: &Docex, archives_too: bool) {
    let mut jobs = lock(&state.jobs);
    for job in jobs.map.values_mut() {
        if let Archive::Ready { path, .. } = &job.archive
            && archives_too
        {
            let _ = std::fs::remove_file(path);
            job.archive = Archive::Gone;
        }
        if !matches!(job.archive, Archive::NotNeeded | Archive::Ready { .. }) {
            let _ = std::fs::remove_file(state.dir.join(format!("{}.zip.part", job.id)));
            job.archive = Archive::Gone;
        }
    }
}

/// After a restart: each replayed job that needs an archive finds it on
/// disk, or has it written again (archives are made from the job id, so it
/// is the same zip), or knows it expired.
pub(super) fn restore(state: &Arc<Docex>) {
    let now = Instant::now();
    let mut orders = Vec::new();
    for job in lock(&state.jobs).map.values_mut() {
        if !matches!(job.archive, Archive::Generating) {
            continue;
        }
        let path = state.dir.join(format!("{}.zip", job.id));
        let on_disk = std::fs::metadata(&path).ok();
        job.archive = match on_disk {
            _ if now >= job.done_at + state.cfg.archive_ttl => Archive::Gone,
            Some(m) => {
                let age = m.modified().ok().and_then(|t| t.elapsed().ok()).unwrap_or_default();
                Archive::Ready { path, bytes: m.len(), at: now.checked_sub(age).unwrap_or(now) }
            }
            None => {
                orders.push(Order {
                    job_id: job.id.clone(),
                    kind: job.kind,
                    documents: job.documents,
                    seed: crate::util::stable_hash(&[&job.id]),
                });
                Archive::Generating
            }
        };
    }
    let jobs = lock(&state.jobs).map.len();
    tracing::info!(jobs, rewriting = orders.len(), dir = %state.dir.display(), "DocEx state restored");
    for order in orders {
        generate(Arc::clone(state), order);
    }
}

pub(super) fn job_stats(state: &Docex) -> JobStats {
    let now = Instant::now();
    let jobs = lock(&state.jobs);
    let mut s = JobStats { created: jobs.map.len() as u64, replays: jobs.replays, ..JobStats::default() };
    for job in jobs.map.values() {
        match job.status(now) {
            JobStatus::Queued => s.queued += 1,
            JobStatus::Running => s.running += 1,
            JobStatus::Finished => s.finished += 1,
            JobStatus::Failed => s.failed += 1,
        }
        s.archives_ready += u64::from(matches!(job.archive, Archive::Ready { .. }));
    }
    s
}

/// Deletes what a previous run left in a configured data dir and no job
/// remembers (or was half written); only our own `<uuid>.zip[.part]` names.
pub(super) fn remove_stale(dir: &std::path::Path, jobs: &super::jobs::Jobs) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let kept = name.strip_suffix(".zip").is_some_and(|s| jobs.map.contains_key(s));
        let stem = name.strip_suffix(".zip.part").or_else(|| name.strip_suffix(".zip"));
        if !kept && stem.is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
