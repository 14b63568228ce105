//! Benchmark (not a test): N patients (default 3000) at once through three
//! replicas of every stage, each a real process, on the private three-node
//! RabbitMQ cluster, with the DocEx search+download budget scaled so that the
//! batch takes minutes, not days.
//!
//!   cargo run --release -p docket-e2e --bin bench-scale -- [patients] [per-minute]
//!
//! Prints the makespan against its lower bound ((searches + downloads) / the
//! budget), the requests over any budget, the time to the first report, the
//! CPU seconds per patient of the stages together, of the broker's three
//! Erlang VMs, of this benchmark's PostgreSQL backends and of Redis, and the
//! peak resident memory of every stage process.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use docket_e2e::{Patient, Stage, TestEnv, TestOptions, cluster::Private, stages::ALL};
use docket_stubs::{Budget, budget::max_in_window};

const REPLICAS: usize = 3;

/// The fields of /proc/<pid>/stat after the command name (which may hold spaces), from field 3 on.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(|s| s.parse().unwrap_or(0)).collect())
}

/// CPU seconds (user + system) a process has used; with `children`, also those of its reaped
/// children and of its live ones (the convert stage's warm workers, whose CPU is only in its
/// reaped figure once they are retired).
fn cpu_seconds(pid: u32, children: bool, tick: f64) -> Option<f64> {
    let f = stat_fields(pid)?;
    let (utime, stime, cutime, cstime) = (f[11], f[12], f[13], f[14]);
    let ticks = utime + stime + if children { cutime + cstime } else { 0 };
    let live: f64 = if children {
        pids_where(|p| stat_fields(p).is_some_and(|f| f[1] == u64::from(pid)))
            .into_iter()
            .filter_map(|child| cpu_seconds(child, true, tick))
            .sum()
    } else {
        0.0
    };
    Some(ticks as f64 / tick + live)
}

/// Peak resident memory of a process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Every process whose command name is `name` (redis-server, postgres).
fn pids_named(name: &str) -> Vec<u32> {
    pids_where(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
}

fn pids_where(keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).filter(|pid| keep(*pid)).collect()
}

/// This benchmark's PostgreSQL backends (sessions on its own database).
async fn backends(env: &TestEnv) -> Vec<u32> {
    sqlx::query_scalar::<_, i32>("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        .fetch_all(&env.pool)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| p as u32)
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let per_min: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(480);
    // SAFETY of set_var: before any other thread reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
    }
    let tick = clock_ticks();
    let per_sec = f64::from(per_min) / 60.0;
    let rate = format!("{per_min}/min");

    let cluster = Private::cluster();
    cluster.start().await;
    let mut options = TestOptions::bench(&rate);
    options.broker = Some(cluster.target());
    // 18 stage processes: keep the database's connections well under its 100.
    options.vars.push(("DATABASE_POOL", "3".into()));
    let mut env = TestEnv::new(options).await;
    let patients: Vec<Patient> = (0..n).map(|i| Patient::new(&format!("S{i:05}"))).collect();
    env.seed(&patients).await;
    let mut stages: Vec<(Stage, u32)> = Vec::new();
    for stage in ALL {
        for _ in 0..REPLICAS {
            let index = env.spawn_process(stage);
            stages.push((stage, env.process_id(index)));
        }
    }
    docket_e2e::rabbit::wait_for_queue(&env.vhost, "patients").await;
    // Every consumer up (its queues declared, the control queue last).
    docket_e2e::rabbit::wait_for_queue(&env.vhost, "docket.control").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut beams = Vec::new();
    for node in cluster.nodes.clone() {
        beams.push(cluster.pid(node).await.expect("every cluster node runs"));
    }
    let redis = pids_named("redis-server");
    let sum =
        |pids: &[u32], children: bool| -> f64 { pids.iter().filter_map(|p| cpu_seconds(*p, children, tick)).sum() };
    let stage_pids: Vec<u32> = stages.iter().map(|(_, p)| *p).collect();
    let (stages0, beams0, redis0) = (sum(&stage_pids, true), sum(&beams, true), sum(&redis, false));
    // A backend's whole life is this benchmark's; the last reading of each counts.
    let mut pg: HashMap<u32, f64> = HashMap::new();
    let mut pg0: HashMap<u32, f64> = HashMap::new();
    for pid in backends(&env).await {
        if let Some(c) = cpu_seconds(pid, false, tick) {
            pg0.insert(pid, c);
        }
    }

    println!(
        "{n} patients, {REPLICAS} processes of each stage, on the cluster {:?}, DocEx search+download budget {rate}",
        cluster.target().nodes
    );
    let t0 = chrono::Utc::now();
    let started = Instant::now();
    let ids: Vec<&str> = patients.iter().map(|p| p.id.as_str()).collect();
    for chunk in ids.chunks(500) {
        env.publish_in("scale", "normal", chunk).await;
    }
    loop {
        for pid in backends(&env).await {
            if let Some(c) = cpu_seconds(pid, false, tick) {
                pg.insert(pid, c);
            }
        }
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE state = 'done'")
            .fetch_one(&env.pool)
            .await
            .unwrap_or(0);
        if done >= n as i64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3 * 3600), "not finished in three hours ({done} of {n})");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let wall = started.elapsed();
    let (stages1, beams1, redis1) = (sum(&stage_pids, true), sum(&beams, true), sum(&redis, false));
    let pg_cpu: f64 = pg.iter().map(|(pid, c)| c - pg0.get(pid).copied().unwrap_or(0.0)).sum();

    let (first, last): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT min(finished_at), max(finished_at) FROM docket.runs")
            .fetch_one(&env.pool)
            .await
            .expect("reading runs");
    let downloads: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE archive_url IS NOT NULL")
        .fetch_one(&env.pool)
        .await
        .expect("reading runs");
    let makespan = (last - t0).to_std().unwrap_or(wall);
    let bound = Duration::from_secs_f64((n as f64 + downloads as f64) / per_sec);
    let docex = env.docex.stats();
    let tracker = env.tracker.stats();
    let over = docex.search.over_budget + docex.status.over_budget + tracker.budget.over_budget;
    let per = |cpu: f64| cpu / n as f64;

    println!();
    println!("makespan                    {:>8.1} s", makespan.as_secs_f64());
    println!(
        "lower bound                 {:>8.1} s   ({n} searches + {downloads} downloads at {per_sec:.1}/s)",
        bound.as_secs_f64()
    );
    println!(
        "makespan over the bound     {:>8.2} %   (target: at most 3 %)",
        (makespan.as_secs_f64() / bound.as_secs_f64() - 1.0) * 100.0
    );
    println!("requests over a budget      {over:>8}     (target 0)");
    let window = |log: &[u64], period_ms: u64| max_in_window(log, Duration::from_millis(period_ms));
    println!(
        "most in any window          {:>8}     DocEx search+download (limit {}), {} status (limit {}), {} TaskTracker (limit {})",
        window(&env.docex.budget_log(Budget::Search), docex.search.period_ms),
        docex.search.limit,
        window(&env.docex.budget_log(Budget::Status), docex.status.period_ms),
        docex.status.limit,
        window(&env.tracker.budget_log(), tracker.budget.period_ms),
        tracker.budget.limit
    );
    println!("time to the first report    {:>8.1} s", (first - t0).to_std().unwrap_or_default().as_secs_f64());
    println!(
        "CPU per patient, stages     {:>8.4} s   ({:.1} s in all, {} processes; target: at most 0.1 s)",
        per(stages1 - stages0),
        stages1 - stages0,
        stage_pids.len()
    );
    println!(
        "CPU per patient, broker     {:>8.4} s   ({:.1} s, three nodes' beam.smp)",
        per(beams1 - beams0),
        beams1 - beams0
    );
    println!(
        "CPU per patient, PostgreSQL {:>8.4} s   ({pg_cpu:.1} s, this benchmark's {} backends)",
        per(pg_cpu),
        pg.len()
    );
    println!(
        "CPU per patient, Redis      {:>8.4} s   ({:.1} s, the whole redis-server, shared with anything else on it)",
        per(redis1 - redis0),
        redis1 - redis0
    );
    println!("peak resident memory of each stage process (MiB):");
    for stage in ALL {
        let peaks: Vec<String> = stages
            .iter()
            .filter(|(s, _)| *s == stage)
            .map(|(_, pid)| peak_rss_mib(*pid).map(|m| format!("{m:.1}")).unwrap_or_else(|| "gone".into()))
            .collect();
        println!("  {:<16} {}", stage.binary(), peaks.join("  "));
    }
    env.cleanup().await;
}
