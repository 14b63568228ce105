//! The broker itself going away, for real: nodes of a private three-node
//! cluster SIGKILLed and stopped mid-batch while stage processes are
//! SIGKILLed too, and a private single node stopped and started. Every run
//! still finishes once, within every budget. These tests stop servers, so
//! nextest runs them one at a time (test group `private-servers` in
//! `.config/nextest.toml`).

use std::time::{Duration, Instant};

use docket_e2e::{Patient, Stage, TestEnv, TestOptions, cluster::Private, stages::ALL};
use docket_stubs::ArchiveKind;

use crate::common::{assert_budgets_held, every_run_finished_once};

fn options(search_rate: &str, broker: &Private) -> TestOptions {
    let mut o = TestOptions::default();
    o.docex.search_rate = search_rate.parse().expect("a valid rate");
    o.docex.docs = "1..4".parse().expect("a valid range");
    o.docex.empty_share = 0.2;
    o.docex.archive_kind = ArchiveKind::Text;
    o.broker = Some(broker.target());
    o
}

async fn done(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE state = 'done'")
        .fetch_one(pool)
        .await
        .expect("counting finished runs")
}

/// Publishes `n` patients named `prefix…` and starts every stage as a process.
async fn batch(env: &mut TestEnv, prefix: &str, n: usize) -> Vec<(Stage, usize)> {
    let patients: Vec<Patient> = (0..n).map(|i| Patient::new(&format!("{prefix}{i:03}"))).collect();
    env.seed(&patients).await;
    let procs = ALL.iter().map(|s| (*s, env.spawn_process(*s))).collect();
    let ids: Vec<&str> = patients.iter().map(|p| p.id.as_str()).collect();
    env.publish_in("broker-loss", "normal", &ids).await;
    procs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_losing_its_busiest_node_to_sigkill_and_another_to_a_stop_while_stages_are_sigkilled_finishes_every_run_once()
 {
    let cluster = Private::cluster();
    cluster.start().await;
    // 200 patients need about 360 searches and downloads: two minutes at
    // 3/s, long enough for both node outages to fall mid-batch.
    let mut env = TestEnv::new(options("180/min", &cluster)).await;
    let mut procs = batch(&mut env, "CL", 200).await;
    env.wait_finished(10, Duration::from_secs(120)).await;

    // The node outages run beside the stage kills.
    let (vhost, pool) = (env.vhost.clone(), env.pool.clone());
    let outages = tokio::spawn(async move {
        let leaders = cluster.leaders(&vhost).await;
        println!("queue leaders before: {leaders:?}");
        let busiest = leaders.first().map(|l| l.0).expect("the vhost's queues have leaders");
        cluster.kill(busiest).await;
        let killed_at = Instant::now();
        let done_at_kill = done(&pool).await;
        println!("SIGKILLed node {busiest} with {done_at_kill} of 200 runs done");
        tokio::time::sleep(Duration::from_secs(60)).await;
        cluster.start_node(busiest).await;
        println!("node {busiest} back after {:?}", killed_at.elapsed());
        let second = cluster.nodes.iter().copied().find(|n| *n != busiest).expect("three nodes");
        cluster.safe_to_stop(second).await;
        cluster.stop_node(second).await;
        let done_at_stop = done(&pool).await;
        println!("stopped node {second} at {:?} with {done_at_stop} runs done", killed_at.elapsed());
        tokio::time::sleep(Duration::from_secs(30)).await;
        cluster.start_node(second).await;
        println!("node {second} back at {:?}; leaders now {:?}", killed_at.elapsed(), cluster.leaders(&vhost).await);
        (done_at_kill, done_at_stop)
    });

    // A stage process SIGKILLed and started again every few seconds, as in
    // the crash test, until the node outages are over.
    let mut kills = 0;
    while !outages.is_finished() {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let victim = rand::random_range(0..procs.len());
        let (stage, index) = procs[victim];
        env.kill(index);
        procs[victim] = (stage, env.spawn_process(stage));
        kills += 1;
    }
    let (done_at_kill, done_at_stop) = outages.await.expect("the node outages ran");
    let done_after = done(&env.pool).await;
    println!("{kills} stage processes SIGKILLed; {done_after} of 200 runs done when the outages ended");
    assert!(done_at_kill < 100, "the first node died mid-batch ({done_at_kill} runs done)");
    assert!(done_at_stop < 200, "the second node stopped mid-batch too ({done_at_stop} runs done)");

    env.wait_finished(200, Duration::from_secs(240)).await;
    every_run_finished_once(&env, 200).await;
    assert_budgets_held(&env, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_rabbitmq_stopped_and_started_mid_batch_loses_and_doubles_nothing() {
    let node = Private::single();
    node.start().await;
    let mut env = TestEnv::new(options("600/min", &node)).await;
    batch(&mut env, "SO", 80).await;
    env.wait_finished(15, Duration::from_secs(120)).await;

    node.stop_node(0).await;
    let finished_while_down = done(&env.pool).await;
    println!("broker stopped with {finished_while_down} of 80 runs done");
    assert!(finished_while_down < 80, "the broker stopped mid-batch");
    tokio::time::sleep(Duration::from_secs(15)).await;
    node.start_node(0).await;

    env.wait_finished(80, Duration::from_secs(240)).await;
    every_run_finished_once(&env, 80).await;
    assert_budgets_held(&env, 0);
    env.cleanup().await;
}
