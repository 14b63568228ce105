//! Fault injection: every mode, windows that end by themselves, storms, delayed starts.

use std::time::{Duration, Instant};

use docket_stubs::{DocexConfig, FaultMode, Faults};
use serde_json::json;

use crate::helpers::*;

async fn status_of(c: &reqwest::Client, url: &str) -> u16 {
    c.get(format!("{url}/v1/searches/nope")).send().await.expect("answer").status().as_u16()
}

#[tokio::test]
async fn outage_modes_answer_their_status_while_admin_keeps_answering() {
    let d = docex(docex_cfg()).await;
    let c = client();
    for (mode, code) in [(FaultMode::Unavailable, 503), (FaultMode::BadGateway, 502), (FaultMode::GatewayTimeout, 504)]
    {
        d.set_faults(Faults::mode(mode, None));
        assert_eq!(status_of(&c, &d.url()).await, code, "{mode:?}");
        assert_eq!(c.get(format!("{}/admin/stats", d.url())).send().await.expect("answer").status(), 200);
    }
    d.set_faults(Faults::none());
    assert_eq!(status_of(&c, &d.url()).await, 404);
    let s = d.stats();
    assert_eq!(s.dark_calls, 3);
    assert_eq!(s.status.spent, 4, "outage answers spent budget too");
    d.shutdown().await;
}

#[tokio::test]
async fn a_fault_window_ends_by_itself() {
    let d = docex(docex_cfg()).await;
    let c = client();
    d.set_faults(Faults::mode(FaultMode::Unavailable, Some(1000)));
    assert_eq!(status_of(&c, &d.url()).await, 503);
    eventually(Duration::from_secs(5), "the window to end", || async {
        (status_of(&c, &d.url()).await == 404).then_some(())
    })
    .await;
    assert_eq!(d.stats().faults.mode, FaultMode::Unavailable, "stats show the setting given");
    d.shutdown().await;
}

#[tokio::test]
async fn refuse_mode_really_refuses_tcp_connections_then_listens_again() {
    let d = docex(docex_cfg()).await;
    let addr = d.addr();
    d.set_faults(Faults::mode(FaultMode::Refuse, Some(1500)));
    eventually(Duration::from_secs(3), "connections to be refused", || async {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        }
    })
    .await;
    assert_eq!(d.stats().status.spent, 0, "the in-process handle still works");
    eventually(Duration::from_secs(5), "the port to open again", || async {
        tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
    })
    .await;
    assert_eq!(status_of(&client(), &d.url()).await, 404);
    d.shutdown().await;
}

#[tokio::test]
async fn hang_mode_times_a_client_out_and_answers_once_the_window_ends() {
    let d = docex(docex_cfg()).await;
    d.set_faults(Faults::mode(FaultMode::Hang, None));
    let quick = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().expect("client");
    let err = quick.get(format!("{}/v1/searches/nope", d.url())).send().await.expect_err("no answer while hanging");
    assert!(err.is_timeout(), "{err}");
    let c = client();
    let url = d.url();
    let waiting = tokio::spawn(async move { status_of(&c, &url).await });
    eventually(Duration::from_secs(3), "the second request to arrive", || async {
        (d.stats().endpoints.get("GET /v1/searches/{job_id}").map_or(0, |e| e.calls) == 2).then_some(())
    })
    .await;
    d.set_faults(Faults::none());
    assert_eq!(waiting.await.expect("the request task"), 404, "the held request is answered after the window");
    d.shutdown().await;
}

#[tokio::test]
async fn an_error_rate_of_one_fails_everything_and_latency_delays_every_answer() {
    let d = docex(docex_cfg()).await;
    let c = client();
    d.set_faults(Faults { error_rate: 1.0, ..Faults::none() });
    for _ in 0..3 {
        assert_eq!(status_of(&c, &d.url()).await, 503);
    }
    d.set_faults(Faults { latency_ms: 200, ..Faults::none() });
    let t0 = Instant::now();
    assert_eq!(status_of(&c, &d.url()).await, 404);
    assert!(t0.elapsed() >= Duration::from_millis(200));
    d.shutdown().await;
}

#[tokio::test]
async fn a_429_storm_answers_everything_with_retry_after_and_spends_nothing() {
    let d = docex(docex_cfg()).await;
    let c = client();
    d.set_faults(Faults { storm_429_ms: Some(1000), ..Faults::none() });
    let r = c.get(format!("{}/v1/searches/nope", d.url())).send().await.expect("answer");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let s = d.stats();
    assert_eq!((s.status.spent, s.status.over_budget, s.storm_429), (0, 0, 1));
    eventually(Duration::from_secs(5), "the storm to pass", || async {
        (status_of(&c, &d.url()).await == 404).then_some(())
    })
    .await;
    d.shutdown().await;
}

#[tokio::test]
async fn faults_at_start_can_wait_before_they_begin() {
    let delayed = Faults { start_after_ms: Some(1000), ..Faults::mode(FaultMode::BadGateway, Some(1000)) };
    let d = docex(DocexConfig { faults: delayed, ..docex_cfg() }).await;
    let c = client();
    assert_eq!(status_of(&c, &d.url()).await, 404, "not yet");
    eventually(Duration::from_secs(5), "the delayed window", || async {
        (status_of(&c, &d.url()).await == 502).then_some(())
    })
    .await;
    eventually(Duration::from_secs(5), "the window to end", || async {
        (status_of(&c, &d.url()).await == 404).then_some(())
    })
    .await;
    d.shutdown().await;
}

#[tokio::test]
async fn faults_set_through_the_admin_endpoint_apply_to_the_tracker_and_bad_ones_are_400() {
    let t = tracker(tracker_cfg()).await;
    let c = client();
    let put = |body: serde_json::Value| c.put(format!("{}/admin/faults", t.url())).json(&body).send();
    assert_eq!(put(json!({"mode": "unavailable"})).await.expect("answer").status(), 200);
    assert_eq!(c.get(format!("{}/v1/tasks/x", t.url())).send().await.expect("answer").status(), 503);
    assert_eq!(put(json!({"mode": "explode"})).await.expect("answer").status(), 400);
    assert_eq!(put(json!({"error_rate": 2.0})).await.expect("answer").status(), 400);
    assert_eq!(put(json!({})).await.expect("answer").status(), 200);
    assert_eq!(c.get(format!("{}/v1/tasks/x", t.url())).send().await.expect("answer").status(), 404);
    assert_eq!(t.stats().dark_calls, 1);
    t.shutdown().await;
}
