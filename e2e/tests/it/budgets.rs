//! The fleet-wide budgets: many replicas together stay inside them, and a
//! long job is polled on the backoff schedule rather than at the budget's
//! full rate. (A Redis restart: `servers.rs`.)

use std::time::{Duration, Instant};

use docket_e2e::{Patient, TestEnv, TestOptions};
use docket_shared::{
    outside::{
        Budget, Redis,
        limiter::{Limiter, Rank, Slot, TAKE_OVER_GUARD},
    },
    settings::{Settings, Vars},
};
use docket_stubs::{ArchiveKind, Profile};

use crate::common::{assert_budgets_held, one_task_one_report_each};

fn quick_archives(options: &mut TestOptions) {
    options.docex.docs = "0..2".parse().expect("a valid range");
    options.docex.empty_share = 0.3;
    options.docex.archive_kind = ArchiveKind::Text;
    options.docex.job_time = "100ms..500ms".parse().expect("a valid range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_of_every_stage_with_300_patients_never_exceed_any_budget() {
    let mut options = TestOptions::default();
    quick_archives(&mut options);
    let mut env = TestEnv::new(options).await;
    let patients: Vec<Patient> = (0..300).map(|i| Patient::new(&format!("R{i:03}"))).collect();
    env.seed(&patients).await;
    env.start_all(3).await;
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;
    env.wait_finished(300, Duration::from_secs(300)).await;

    one_task_one_report_each(&env.tracker.tasks(), 300);
    assert_budgets_held(&env, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_running_for_an_hour_is_polled_on_the_backoff_schedule_not_at_full_rate() {
    // Time scaled 60 to 1: an hour is a minute, a one-minute poll cap is one second.
    let mut options = TestOptions::default();
    options.vars.push(("POLL_FIRST", "200ms".into()));
    options.vars.push(("POLL_MAX", "1s".into()));
    let mut env = TestEnv::new(options).await;
    let p = Patient::new("P-HOUR");
    let hour = Profile { documents: 1, kind: ArchiveKind::Text, running_ms: Some(60_000), ..Profile::default() };
    env.docex.set_profile(&p.first, &p.last, hour);
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["P-HOUR"]).await;
    env.wait_finished(1, Duration::from_secs(120)).await;

    let polls = env.docex.stats().status.spent;
    // 200 ms doubling to 1 s: about 3 polls to reach the cap, then one a second.
    println!("a 60 s job took {polls} status reads (the budget would have allowed {})", 60 * 50);
    assert!((40..=80).contains(&polls), "{polls} status reads for a one-minute job");
    env.cleanup().await;
}

/// One use of the limiter as the gate makes it: reserve, sleep to the slot
/// (no earlier than the guard before its latest possible time), check the
/// reservation still stands, else reserve again. Returns when it began and
/// when it would send.
async fn take_slot(limiter: &Limiter, rank: Rank) -> (Instant, Instant) {
    let first = Instant::now();
    loop {
        let asked = Instant::now();
        let Slot::Reserved(r) =
            limiter.reserve(Budget::DocexSearch, Duration::from_secs(60), rank).await.expect("redis answers")
        else {
            panic!("a wait of a minute is always accepted");
        };
        let answered = Instant::now();
        if !r.wait.is_zero() {
            let at = (asked + r.wait).max((answered + r.wait).checked_sub(TAKE_OVER_GUARD).unwrap_or(answered));
            tokio::time::sleep_until(at.into()).await;
            if !limiter.stands(Budget::DocexSearch, &r).await.expect("redis answers") {
                continue;
            }
        }
        return (first, Instant::now());
    }
}

/// The ranks the gate gives a bulk download, an urgent search and an urgent
/// download.
const DOWNLOAD: Rank = Rank { own: 2, takes_over: 0, behind_one: 0 };
const URGENT_SEARCH: Rank = Rank { own: 1, takes_over: 3, behind_one: 2 };
const URGENT_DOWNLOAD: Rank = Rank { own: 0, takes_over: 2, behind_one: 0 };

/// A limiter of the search+download budget at 600/min (100 ms slots, no
/// margin) whose keys no other test shares.
fn limiter_of_its_own(name: &str) -> Limiter {
    let prefix = format!("docket_t_{}_{}_{name}", chrono::Utc::now().timestamp(), std::process::id());
    let vars = [("DOCEX_SEARCH_RATE", "600/min"), ("LIMIT_MARGIN", "0ms"), ("REDIS_KEY_PREFIX", prefix.as_str())];
    let settings =
        Settings::from_vars(&Vars::from_map(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
            .expect("valid settings");
    let redis = Redis::connect(&settings.redis_url, &settings.redis_key_prefix).expect("a Redis client");
    Limiter::new(redis, &settings)
}

/// Eight callers of rank `line` keep a reservation each far ahead, always;
/// now and then one of rank `urgent` comes. Every send of the contest, in
/// order: (began, sends, urgent). Asserts that priority chose who sent,
/// never how often: sends stay an interval apart (less the jitter of
/// waking up).
async fn contest(name: &str, line: Rank, urgent: Rank) -> (Duration, Vec<(Instant, Instant, bool)>) {
    let limiter = limiter_of_its_own(name);
    let interval = limiter.interval(Budget::DocexSearch);
    let until = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            while Instant::now() < until {
                let (from, at) = take_slot(&limiter, line).await;
                sent.push((from, at, false));
            }
            sent
        }));
    }
    let urgent_caller = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            tokio::time::sleep(Duration::from_millis(500)).await;
            while Instant::now() + Duration::from_millis(500) < until {
                let (from, at) = take_slot(&limiter, urgent).await;
                sent.push((from, at, true));
                tokio::time::sleep(Duration::from_millis(230)).await;
            }
            sent
        })
    };
    let mut sends = urgent_caller.await.expect("the urgent caller");
    for t in tasks {
        sends.extend(t.await.expect("a caller in line"));
    }
    sends.sort_by_key(|s| s.1);
    for pair in sends.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(gap + Duration::from_millis(20) >= interval, "two sends {gap:?} apart");
    }
    (interval, sends)
}

/// The sorted waits of the urgent caller's sends, and of the others'.
fn waits(sends: &[(Instant, Instant, bool)]) -> (Vec<Duration>, Vec<Duration>) {
    let mut urgent: Vec<Duration> = sends.iter().filter(|s| s.2).map(|(from, at, _)| *at - *from).collect();
    let mut others: Vec<Duration> = sends.iter().filter(|s| !s.2).map(|(from, at, _)| *at - *from).collect();
    urgent.sort();
    others.sort();
    (urgent, others)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_urgent_caller_takes_over_a_slot_reserved_ahead_and_no_two_sends_share_an_interval() {
    let (interval, sends) = contest("limiter", DOWNLOAD, URGENT_DOWNLOAD).await;
    let (urgent_waits, bulk_waits) = waits(&sends);
    let (u, b) = (urgent_waits[urgent_waits.len() / 2], bulk_waits[bulk_waits.len() / 2]);
    println!("{} sends; urgent wait median {u:?} (worst {:?}), bulk {b:?}", sends.len(), urgent_waits.last());
    assert!(urgent_waits.len() >= 8, "{} urgent sends", urgent_waits.len());
    // The urgent caller takes the earliest slot more than the guard away;
    // the bulk callers wait behind eight reservations.
    assert!(u <= interval + TAKE_OVER_GUARD + Duration::from_millis(30), "urgent median wait {u:?}");
    assert!(b >= interval * 6, "bulk median wait {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_urgent_search_waits_for_the_download_due_next_and_not_for_the_whole_line() {
    let (interval, sends) = contest("behind_one", DOWNLOAD, URGENT_SEARCH).await;
    let (urgent_waits, download_waits) = waits(&sends);
    let (u, d) = (urgent_waits[urgent_waits.len() / 2], download_waits[download_waits.len() / 2]);
    println!(
        "{} sends; urgent search wait median {u:?} (least {:?}, worst {:?}), download {d:?}",
        sends.len(),
        urgent_waits.first(),
        urgent_waits.last()
    );
    assert!(urgent_waits.len() >= 8, "{} urgent sends", urgent_waits.len());
    // The download due next always went first: the schedule is full, so
    // the urgent search's slot is the second, at least an interval away...
    let least = urgent_waits[0];
    assert!(least + Duration::from_millis(20) >= interval, "an urgent search went ahead of every download ({least:?})");
    // ...and not behind the eight downloads holding reservations.
    assert!(u <= 2 * interval + Duration::from_millis(30), "urgent search median wait {u:?}");
    assert!(d >= interval * 6, "download median wait {d:?}");
}

/// Which slot of a budget whose slots are all reserved ahead (one every
/// 100 ms from now on) an urgent search and then an urgent download take,
/// when an urgent download aims at slot `aimed` (None: at none). In slots
/// from now: (the search's, the download's).
async fn slots_taken(name: &str, aimed: Option<u32>) -> (f64, f64) {
    let limiter = limiter_of_its_own(name);
    let interval = limiter.interval(Budget::DocexSearch);
    let wait = |slot: Slot| match slot {
        Slot::Reserved(r) => r.wait,
        Slot::Deferred(after) => panic!("a wait of a minute is always accepted, not {after:?}"),
    };
    let start = Instant::now();
    for _ in 0..6 {
        limiter.reserve(Budget::DocexSearch, Duration::from_secs(60), DOWNLOAD).await.expect("redis answers");
    }
    if let Some(k) = aimed {
        let slot = (interval * k).saturating_sub(start.elapsed());
        limiter.aim(Budget::DocexSearch, "run-1", Some(slot)).await.expect("redis answers");
    }
    let mut taken = Vec::new();
    for rank in [URGENT_SEARCH, URGENT_DOWNLOAD] {
        let asked = Instant::now();
        let w = wait(limiter.reserve(Budget::DocexSearch, Duration::from_secs(60), rank).await.expect("redis answers"));
        taken.push((asked - start + w).as_secs_f64() / interval.as_secs_f64());
    }
    (taken[0], taken[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_search_keeps_off_the_slot_an_urgent_download_aims_at_and_still_waits_for_one_download_only() {
    let near = |got: f64, slot: f64| (got - slot).abs() < 0.2;
    // Nobody aims: the search spares the download due next (slot 1) and
    // takes slot 2; the urgent download then takes slot 1.
    let (search, download) = slots_taken("aim_none", None).await;
    println!("no aim: search at slot {search:.2}, download at slot {download:.2}");
    assert!(near(search, 2.0) && near(download, 1.0), "search {search:.2}, download {download:.2}");
    // The urgent download's poll aims at slot 2: the search takes slot 1
    // (the download due next goes one slot later), the urgent download slot 2.
    let (search, download) = slots_taken("aim_2", Some(2)).await;
    println!("aim at 2: search at slot {search:.2}, download at slot {download:.2}");
    assert!(near(search, 1.0) && near(download, 2.0), "search {search:.2}, download {download:.2}");
    // It aims at slot 1: that slot is the download the search waits behind;
    // the search takes slot 2, as with no aim, and the urgent download slot 1.
    let (search, download) = slots_taken("aim_1", Some(1)).await;
    println!("aim at 1: search at slot {search:.2}, download at slot {download:.2}");
    assert!(near(search, 2.0) && near(download, 1.0), "search {search:.2}, download {download:.2}");
    // It aims at slot 3: nothing the search would take; as with no aim.
    let (search, download) = slots_taken("aim_3", Some(3)).await;
    println!("aim at 3: search at slot {search:.2}, download at slot {download:.2}");
    assert!(near(search, 2.0) && near(download, 1.0), "search {search:.2}, download {download:.2}");
}
