//! `docket.fetch`: download the run's archive into scratch (checkpointed, so
//! a crash during extraction never spends a second download), extract it
//! safely, and hand every document to the store stage in one commit.

use std::{path::PathBuf, sync::Arc};

use docket_shared::{
    App, Handler, Meta, Outgoing, StageError, StageResult, Transient, UnitOfWork,
    broker::topology::queues,
    messages::{ORIGINALS_PER_MESSAGE, StoreStep, scratch},
    outside::docex::Download,
    run::{self, Guard, Run, State, Step, edges},
};
use futures::{StreamExt, TryStreamExt};
use tracing::info;

use crate::{ArchiveError, Entry, EntryOutcome, ExtractLimits, extract, key_segment};

/// A fetch handler for one lane: the normal queue, or the urgent one, whose
/// downloads take the next DocEx slot instead of waiting behind every
/// finished job in the normal queue.
pub struct Fetch(pub Arc<App>);
pub struct UrgentFetch(pub Arc<App>);

/// A document as the run records it.
struct Doc {
    index: i32,
    name: String,
    outcome: Result<(PathBuf, u64), String>,
}

impl Handler for Fetch {
    type Input = Step;
    const QUEUE: &'static str = queues::FETCH;

    /// Downloads are long and few (the budget allows ten a minute): two at a
    /// time per replica keeps the next one ready without hoarding messages.
    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(2)
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        fetch(&self.0, step).await
    }
}

impl Handler for UrgentFetch {
    type Input = Step;
    const QUEUE: &'static str = queues::FETCH_URGENT;

    fn prefetch(&self, _app: &App) -> u16 {
        1
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        fetch(&self.0, step).await
    }
}

async fn fetch(app: &App, step: Step) -> StageResult {
    let Some(run) = run::current(&app.db().pool, step, State::Fetch).await? else { return Ok(()) };
    let guard = WorkDir(Some(tempfile::tempdir_in(&app.settings.work_dir)?));
    let work = guard.0.as_ref().expect("the work dir was just created");
    let archive = if run.archive_fetched {
        local_archive(app, &run, work).await?
    } else {
        match download(app, &run, work).await? {
            Some(path) => path,
            None => return search_again(app, &run).await,
        }
    };
    let docs = match archive {
        Ok(path) => unpack(app, &run, path, work).await?,
        Err(reason) => vec![Doc { index: 0, name: "(archive)".into(), outcome: Err(reason) }],
    };
    record(app, &run, &docs).await?;
    let _ = app.scratch.delete_prefix(&scratch::archive(run.run_id)).await;
    Ok(())
}

/// The handler's local work area: thousands of extracted files are removed
/// on a blocking thread, not on the async runtime.
struct WorkDir(Option<tempfile::TempDir>);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let (Some(dir), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn_blocking(move || drop(dir));
        }
    }
}

/// Downloads into scratch and checkpoints. `None`: the archive expired or
/// vanished, so the run must search again. `Some(Err)`: too large, which
/// the report lists as the archive's failure.
async fn download(app: &App, run: &Run, work: &tempfile::TempDir) -> StageResult<Option<Result<PathBuf, String>>> {
    let url =
        run.archive_url.as_deref().ok_or_else(|| StageError::permanent("run is fetching without an archive URL"))?;
    let key = scratch::archive(run.run_id);
    // With a local scratch directory, download straight beside the final
    // file and rename: a multi-GB archive is written to disk once.
    let in_scratch = app.scratch.local_path(&key);
    let local = match &in_scratch {
        Some(path) => {
            let dir = path.parent().map(PathBuf::from).unwrap_or_default();
            tokio::fs::create_dir_all(&dir).await?;
            dir.join(format!(".archive-{}.partial", uuid::Uuid::new_v4()))
        }
        None => work.path().join("archive.zip"),
    };
    let limit = app.settings.archive_max_bytes;
    let guard = Guard::new(&app.db().pool, run);
    let downloaded = app.docex().download(url, &local, limit, &guard).await;
    if !matches!(downloaded, Ok(Download::Saved { .. })) {
        let _ = tokio::fs::remove_file(&local).await;
    }
    let result = match downloaded? {
        Download::Saved { bytes } => {
            let path = match in_scratch {
                Some(path) => {
                    tokio::fs::rename(&local, &path).await?;
                    path
                }
                None => {
                    app.scratch.put_file(&key, &local).await?;
                    local
                }
            };
            info!(run_id = %run.run_id, bytes, "archive downloaded");
            Ok(path)
        }
        Download::Expired | Download::Missing => return Ok(None),
        Download::TooLarge { limit } => Err(format!("the archive is larger than the {} MiB limit", limit >> 20)),
    };
    // Checkpoint: the download is done and its job slot is free for the next
    // search, whatever happens during extraction.
    edges::keep_download(&app.db().pool, run.run_id).await?;
    Ok(Some(result))
}

/// The archive after a crash: it is in scratch already (or was too large,
/// in which case there is nothing in scratch and the report says so).
async fn local_archive(app: &App, run: &Run, work: &tempfile::TempDir) -> StageResult<Result<PathBuf, String>> {
    let key = scratch::archive(run.run_id);
    if let Some(path) = app.scratch.local_path(&key) {
        if path.exists() {
            return Ok(Ok(path));
        }
    } else if app.scratch.exists(&key).await? {
        let local = work.path().join("archive.zip");
        app.scratch.get_to_file(&key, &local).await?;
        return Ok(Ok(local));
    }
    Ok(Err("the archive is larger than the download limit".into()))
}

async fn search_again(app: &App, run: &Run) -> StageResult {
    let mut uow = UnitOfWork::begin(app).await?;
    if edges::search_again(&mut uow, run, "fetch", "archive expired or gone; searching again").await? {
        uow.commit(app).await?;
    }
    Ok(())
}

/// Extracts (off the async runtime) and copies every usable file to scratch.
async fn unpack(app: &App, run: &Run, archive: PathBuf, work: &tempfile::TempDir) -> StageResult<Vec<Doc>> {
    let dest = work.path().join("files");
    std::fs::create_dir_all(&dest)?;
    let limits = ExtractLimits {
        max_entries: app.settings.archive_max_entries,
        max_total_bytes: app.settings.archive_max_bytes,
        max_entry_bytes: app.settings.entry_max_bytes,
        ..ExtractLimits::default()
    };
    let extracted =
        tokio::task::spawn_blocking(move || extract(&archive, &dest, &limits)).await.transient("extraction task")?;
    let entries: Vec<Entry> = match extracted {
        Ok(entries) => entries,
        // Our disk, not the archive: try again later.
        Err(ArchiveError::Io(e)) => return Err(StageError::transient(format!("extracting the archive: {e}"))),
        // The archive as a whole is unusable: one failed document says why.
        Err(e) => return Ok(vec![Doc { index: 0, name: "(archive)".into(), outcome: Err(e.to_string()) }]),
    };
    let run_id = run.run_id;
    futures::stream::iter(entries)
        .map(|entry| async move {
            let index = entry.index as i32;
            let name = label(&entry.name);
            let outcome = match entry.outcome {
                EntryOutcome::File { path, size } => {
                    app.scratch.put_moved(&scratch::original(run_id, index), &path).await?;
                    app.scratch.put_bytes(&scratch::name(run_id, index), name.clone().into_bytes()).await?;
                    Ok((path, size))
                }
                EntryOutcome::Failed { reason } => Err(reason),
            };
            Ok::<_, StageError>(Doc { index, name, outcome })
        })
        .buffered(16)
        .try_collect()
        .await
}

/// An entry's name as a label: control characters (PostgreSQL refuses NUL
/// in text) replaced, and at most 500 characters, keeping both ends.
fn label(name: &str) -> String {
    let clean: Vec<char> = name.chars().map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect();
    if clean.len() <= 500 {
        return clean.into_iter().collect();
    }
    let head: String = clean[..200].iter().collect();
    let tail: String = clean[clean.len() - 299..].iter().collect();
    format!("{head}…{tail}")
}

/// One commit: every document row, the run's totals and state, and a store
/// message per usable document (or the report, when none is usable).
async fn record(app: &App, run: &Run, docs: &[Doc]) -> StageResult {
    let total = docs.len() as i32;
    let failed = docs.iter().filter(|d| d.outcome.is_err()).count() as i32;
    let mut uow = UnitOfWork::begin(app).await?;
    if !edges::extracted(&mut uow, run, total, failed).await? {
        return Ok(());
    }
    let indexes: Vec<i32> = docs.iter().map(|d| d.index).collect();
    let names: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
    let key_names: Vec<String> = docs.iter().map(|d| key_segment(&d.name)).collect();
    let states: Vec<&str> = docs.iter().map(|d| if d.outcome.is_ok() { "extracted" } else { "failed" }).collect();
    let sizes: Vec<Option<i64>> = docs.iter().map(|d| d.outcome.as_ref().ok().map(|(_, s)| *s as i64)).collect();
    let reasons: Vec<Option<&str>> = docs.iter().map(|d| d.outcome.as_ref().err().map(String::as_str)).collect();
    sqlx::query(
        "INSERT INTO docket.documents (run_id, doc, name, key_name, state, size, reason)
         SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])
         ON CONFLICT (run_id, doc) DO NOTHING",
    )
    .bind(run.run_id)
    .bind(indexes)
    .bind(names)
    .bind(key_names)
    .bind(states)
    .bind(sizes)
    .bind(reasons)
    .execute(uow.conn())
    .await?;
    let usable: Vec<i32> = docs.iter().filter(|d| d.outcome.is_ok()).map(|d| d.index).collect();
    for chunk in usable.chunks(ORIGINALS_PER_MESSAGE) {
        let step = StoreStep::Originals { run_id: run.run_id, docs: chunk.to_vec() };
        uow.send(Outgoing::new(queues::STORE, &step).run(run.run_id));
    }
    uow.commit(app).await?;
    info!(run_id = %run.run_id, total, failed, "archive extracted");
    Ok(())
}
