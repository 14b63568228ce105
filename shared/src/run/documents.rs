//! The conversion room. Once its original is stored, a document waits here
//! (`stored`) for a converter; the dispatcher sends documents on
//! (`converting`) so that at most `CONVERT_WINDOW` are at the converters
//! fleet-wide, in the room's order: urgent runs' documents at once, on the
//! urgent lane; then normal before bulk, and between batches of one
//! priority one document each in turn, the batch served longest ago first.
//! A 3,000-file archive then holds nobody back by more than the window.
//! Paused runs' documents keep their place; a cancelled run's never leave.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Priority;
use crate::{
    broker::{Outgoing, topology::queues},
    db::UnitOfWork,
    messages::{CONVERSIONS_PER_MESSAGE, ConvertDoc, ConvertJob, scratch},
};

/// Dispatches are serialised: the window and the turns stay exact however
/// many store replicas wake at once.
const LOCK: i64 = 727_364;

/// Urgent documents sent in one dispatch at most (they bypass the window).
const URGENT_MAX: i64 = 256;

/// A document that may be converted now, in its batch's order.
#[derive(sqlx::FromRow)]
struct Waiting {
    run_id: Uuid,
    doc: i32,
    name: String,
    priority: i16,
    batch: String,
    served: Option<DateTime<Utc>>,
}

const SERVABLE_RUN: &str = "r.state = 'documents' AND r.finished_at IS NULL AND NOT r.parked
    AND NOT docket.paused(r.batch, r.patient_id)";

/// Sends what the window allows; returns how many documents it sent.
pub async fn dispatch(uow: &mut UnitOfWork, window: u32) -> Result<usize, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LOCK).execute(uow.conn()).await?;
    let in_flight: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM docket.documents d JOIN docket.runs r USING (run_id)
         WHERE d.state = 'converting' AND r.finished_at IS NULL AND NOT r.parked AND r.priority > 0",
    )
    .fetch_one(uow.conn())
    .await?;
    let free = (i64::from(window) - in_flight).max(0);
    // Each batch's head documents (as many as could go), oldest run first.
    let waiting: Vec<Waiting> = sqlx::query_as(&format!(
        "SELECT x.run_id, x.doc, x.name, x.priority, bs.batch, b.last_convert_at AS served
         FROM (SELECT DISTINCT r.batch FROM docket.runs r WHERE {SERVABLE_RUN}) bs
         JOIN docket.batches b ON b.name = bs.batch
         CROSS JOIN LATERAL (
             SELECT d.run_id, d.doc, d.name, r.priority
             FROM docket.runs r JOIN docket.documents d ON d.run_id = r.run_id AND d.state = 'stored'
             WHERE r.batch = bs.batch AND {SERVABLE_RUN}
             ORDER BY r.priority, r.created_at, d.doc
             LIMIT greatest($1, $2)) x"
    ))
    .bind(free)
    .bind(URGENT_MAX)
    .fetch_all(uow.conn())
    .await?;
    let picked = take_turns(waiting, free as usize);
    if picked.is_empty() {
        return Ok(0);
    }
    let runs: Vec<Uuid> = picked.iter().map(|w| w.run_id).collect();
    let docs: Vec<i32> = picked.iter().map(|w| w.doc).collect();
    sqlx::query(
        "UPDATE docket.documents d SET state = 'converting', dispatched_at = now(), updated_at = now()
         FROM UNNEST($1::uuid[], $2::int[]) AS p(run_id, doc)
         WHERE d.run_id = p.run_id AND d.doc = p.doc AND d.state = 'stored'",
    )
    .bind(&runs)
    .bind(&docs)
    .execute(uow.conn())
    .await?;
    // The batch served last this time is the last in line next time.
    let mut order: Vec<&str> = Vec::new();
    for w in &picked {
        order.retain(|b| *b != w.batch);
        order.push(&w.batch);
    }
    sqlx::query(
        "UPDATE docket.batches b SET last_convert_at = clock_timestamp() + make_interval(secs => p.n * 1e-6)
         FROM UNNEST($1::text[]) WITH ORDINALITY AS p(name, n) WHERE b.name = p.name",
    )
    .bind(&order)
    .execute(uow.conn())
    .await?;
    for (lane, job) in jobs(&picked, per_message(window)) {
        let run_id = job.run_id;
        uow.send(Outgoing::new(lane, &job).run(run_id));
    }
    Ok(picked.len())
}

/// Documents of one run per conversion message: as many as leave the window
/// at least sixteen messages (so sixteen slots, four converters of four, all
/// have one), at most [`CONVERSIONS_PER_MESSAGE`].
fn per_message(window: u32) -> usize {
    (window as usize / 16).clamp(1, CONVERSIONS_PER_MESSAGE)
}

/// The picked documents as conversion messages, each on its lane: a run's
/// documents together, up to `per` in a message, in the order picked;
/// urgent runs' documents one to a message, so they spread over every free
/// slot at once.
fn jobs(picked: &[Waiting], per: usize) -> Vec<(&'static str, ConvertJob)> {
    let mut jobs: Vec<(&'static str, ConvertJob)> = Vec::new();
    // The message of each run still being filled.
    let mut filling: HashMap<Uuid, usize> = HashMap::new();
    for w in picked {
        let doc = ConvertDoc { doc: w.doc, scratch_key: scratch::original(w.run_id, w.doc), ext: extension(&w.name) };
        if Priority::from_rank(w.priority) == Priority::Urgent {
            jobs.push((queues::CONVERT_URGENT, ConvertJob::single(w.run_id, doc)));
            continue;
        }
        match filling.get(&w.run_id) {
            Some(&i) if jobs[i].1.then.len() + 1 < per => jobs[i].1.then.push(doc),
            _ => {
                filling.insert(w.run_id, jobs.len());
                jobs.push((queues::CONVERT, ConvertJob::single(w.run_id, doc)));
            }
        }
    }
    jobs
}

/// The room's order: every urgent document; then, priority by priority,
/// one document per batch in turn (least recently served batch first)
/// until `free` are taken.
fn take_turns(waiting: Vec<Waiting>, free: usize) -> Vec<Waiting> {
    // Per (priority, batch): when the batch was last served, its documents in order.
    type Lane = (Option<DateTime<Utc>>, VecDeque<Waiting>);
    let mut lanes: HashMap<(i16, String), Lane> = HashMap::new();
    for w in waiting {
        lanes.entry((w.priority, w.batch.clone())).or_insert_with(|| (w.served, VecDeque::new())).1.push_back(w);
    }
    let mut keys: Vec<(i16, Option<DateTime<Utc>>, String)> =
        lanes.iter().map(|((p, b), (served, _))| (*p, *served, b.clone())).collect();
    // None (never served) sorts first, as NULLS FIRST would.
    keys.sort();
    let mut picked = Vec::new();
    let mut normal_taken = 0;
    for rank in Priority::ALL.map(Priority::rank) {
        let mut turn: Vec<&String> = keys.iter().filter(|k| k.0 == rank).map(|k| &k.2).collect();
        while !turn.is_empty() {
            turn.retain(|batch| {
                if rank > 0 && normal_taken >= free {
                    return false;
                }
                let queue = &mut lanes.get_mut(&(rank, (*batch).clone())).expect("a lane for every key").1;
                match queue.pop_front() {
                    Some(w) => {
                        normal_taken += usize::from(rank > 0);
                        picked.push(w);
                        true
                    }
                    None => false,
                }
            });
        }
    }
    picked
}

/// The extension of an archive name, lower-cased and short, as a hint for
/// the converter (which judges by content).
pub fn extension(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric()) => {
            ext.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(batch: &str, priority: i16, doc: i32, served: Option<i64>) -> Waiting {
        Waiting {
            run_id: Uuid::nil(),
            doc,
            name: String::new(),
            priority,
            batch: batch.into(),
            served: served.map(|s| DateTime::from_timestamp(s, 0).expect("a valid time")),
        }
    }

    fn order(picked: &[Waiting]) -> Vec<(String, i32)> {
        picked.iter().map(|w| (w.batch.clone(), w.doc)).collect()
    }

    #[test]
    fn batches_of_one_priority_take_turns_least_recently_served_first() {
        let waiting = vec![w("big", 1, 0, Some(20)), w("big", 1, 1, Some(20)), w("big", 1, 2, Some(20))]
            .into_iter()
            .chain([w("small", 1, 0, Some(10)), w("small", 1, 1, Some(10))])
            .collect();
        let picked = take_turns(waiting, 4);
        let expected = [("small", 0), ("big", 0), ("small", 1), ("big", 1)].map(|(b, d)| (b.to_string(), d));
        assert_eq!(order(&picked), expected);
    }

    #[test]
    fn urgent_documents_go_first_and_past_the_window_and_bulk_waits_for_normal() {
        let waiting =
            vec![w("bulk", 2, 0, None), w("n", 1, 0, Some(5)), w("u", 0, 0, Some(99)), w("u", 0, 1, Some(99))];
        let picked = take_turns(waiting, 1);
        let expected = [("u", 0), ("u", 1), ("n", 0)].map(|(b, d)| (b.to_string(), d));
        assert_eq!(order(&picked), expected);
        assert!(take_turns(vec![w("n", 1, 0, None)], 0).is_empty(), "a full window sends nothing normal");
    }

    #[test]
    fn a_runs_documents_share_messages_and_urgent_ones_go_alone() {
        let run = |n: u128| Uuid::from_u128(n);
        let mut picked = Vec::new();
        for doc in 0..5 {
            picked.push(Waiting { run_id: run(1), ..w("big", 1, doc, None) });
            picked.push(Waiting { run_id: run(2), ..w("small", 1, doc, None) });
        }
        picked.push(Waiting { run_id: run(3), ..w("u", 0, 0, None) });
        picked.push(Waiting { run_id: run(3), ..w("u", 0, 1, None) });
        let jobs = jobs(&picked, per_message(64));
        let shape: Vec<(&str, Uuid, Vec<i32>)> =
            jobs.iter().map(|(lane, j)| (*lane, j.run_id, j.docs().iter().map(|d| d.doc).collect())).collect();
        assert_eq!(
            shape,
            vec![
                (queues::CONVERT, run(1), vec![0, 1, 2, 3]),
                (queues::CONVERT, run(2), vec![0, 1, 2, 3]),
                (queues::CONVERT, run(1), vec![4]),
                (queues::CONVERT, run(2), vec![4]),
                (queues::CONVERT_URGENT, run(3), vec![0]),
                (queues::CONVERT_URGENT, run(3), vec![1]),
            ]
        );
        assert_eq!(per_message(4), 1, "a small window keeps one document a message");
        assert_eq!(per_message(1024), CONVERSIONS_PER_MESSAGE);
    }

    #[test]
    fn extensions_are_short_plain_hints() {
        assert_eq!(extension("scans/fax/Referral.TIF"), "tif");
        assert_eq!(extension(".bashrc"), "");
        assert_eq!(extension("a.verylongext"), "");
    }
}
