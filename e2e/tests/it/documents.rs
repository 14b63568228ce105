//! Real documents: every type to a valid PDF with its page count, hostile
//! archives contained, a 3000-file archive, and the memory bulkhead.

use std::{path::Path, time::Duration};

use docket_e2e::{Patient, Stage, TestEnv, TestOptions, stages::metric};
use docket_stubs::{ArchiveKind, Report};

use crate::common::{assert_valid_pdf, one_task_one_report_each, profile};

/// Pages of an original we can count independently of the converter.
fn source_pages(path: &Path) -> Option<u32> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        let mut decoder = tiff::decoder::Decoder::new(std::io::Cursor::new(bytes)).ok()?;
        let mut pages = 1;
        while decoder.more_images() {
            decoder.next_image().ok()?;
            pages += 1;
        }
        return Some(pages);
    }
    if bytes.starts_with(b"%PDF") {
        let out = std::process::Command::new("qpdf").arg("--show-npages").arg(path).output().ok()?;
        return String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    }
    None
}

async fn report_of(env: &TestEnv, patient: &str) -> Report {
    let tasks = env.tracker.tasks();
    let task = tasks.iter().find(|t| t.patient_id == patient).expect("the patient's task");
    task.reports.first().cloned().expect("the task's report")
}

async fn original_of(env: &TestEnv, pdf_key: &str) -> std::path::PathBuf {
    let key: String = sqlx::query_scalar("SELECT original_key FROM docket.documents WHERE pdf_key = $1")
        .bind(pdf_key)
        .fetch_one(&env.pool)
        .await
        .expect("the document's original");
    env.storage_root().join(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_convertible_file_in_mixed_archives_becomes_a_valid_pdf_with_the_right_page_count() {
    let mut env = TestEnv::new(TestOptions::default()).await;
    let patients = [Patient::new("M1"), Patient::new("M2")];
    for p in &patients {
        env.docex.set_profile(&p.first, &p.last, profile(40, ArchiveKind::Mixed));
    }
    env.seed(&patients).await;
    env.start_all(1).await;
    env.publish(&["M1", "M2"]).await;
    env.wait_finished(2, Duration::from_secs(300)).await;
    one_task_one_report_each(&env.tracker.tasks(), 2);

    let mut multi_page_tiffs = 0;
    for id in ["M1", "M2"] {
        let report = report_of(&env, id).await;
        assert_eq!(report.documents.len() + report.failures.len(), 40);
        for d in &report.documents {
            assert_valid_pdf(&env.storage_root().join(&d.pdf), d.pages);
            if let Some(expected) = source_pages(&original_of(&env, &d.pdf).await) {
                assert_eq!(d.pages, Some(expected), "{} has {expected} pages in the original", d.name);
                let tiff = d.name.ends_with(".tif") || d.name.ends_with(".tiff");
                multi_page_tiffs += usize::from(tiff && expected > 1);
            }
        }
        // What fails is what no converter could use: junk bytes (and, on a
        // host without LibreOffice, Word and RTF files, with that reason).
        for f in &report.failures {
            let junk = f.reason.contains("not a recognised document type");
            let no_office = f.reason.contains("LibreOffice is needed");
            assert!(junk || no_office, "a convertible file failed: {} ({})", f.name, f.reason);
        }
    }
    assert!(multi_page_tiffs > 0, "the archives held multi-page TIFFs, each converted page for page");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_archive_writes_nothing_outside_its_area_fails_each_hostile_entry_and_converts_the_rest() {
    let mut env = TestEnv::new(TestOptions::default()).await;
    let p = Patient::new("H1");
    env.docex.set_profile(&p.first, &p.last, profile(24, ArchiveKind::Hostile));
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["H1"]).await;
    env.wait_finished(1, Duration::from_secs(180)).await;

    let report = report_of(&env, "H1").await;
    assert_eq!(report.documents.len() + report.failures.len(), 24, "every entry is listed");
    let failed = |name: &str| report.failures.iter().find(|f| f.name == name).map(|f| f.reason.clone());
    let escaping = ["../../escape.txt", "a/../../b.txt", "/etc/docket-evil.txt", "..\\..\\windows-escape.txt"];
    for name in escaping {
        let reason = failed(name).unwrap_or_else(|| panic!("{name} is not listed as a failure"));
        assert!(reason.contains("escapes"), "{name}: {reason}");
    }
    let unusable = [
        "links/passwd",
        "bomb/zeros.txt",
        "bomb/ratio.bin",
        "images/broken.png",
        "images/broken.jpg",
        "secret/encrypted.txt",
        "nested/inner.zip",
    ];
    for name in unusable {
        let reason = failed(name).unwrap_or_else(|| panic!("{name} is not listed as a failure"));
        assert!(!reason.is_empty(), "{name} failed without a reason");
    }
    assert!(
        report.documents.iter().any(|d| d.name == "reports/not-really.pdf"),
        "a text file named .pdf is judged by its content"
    );
    // The rest are ordinary entries: each is converted, unless it is junk no
    // converter can use, or a Word/RTF file on a host without LibreOffice.
    for f in
        report.failures.iter().filter(|f| !escaping.contains(&f.name.as_str()) && !unusable.contains(&f.name.as_str()))
    {
        let junk = f.reason.contains("not a recognised document type");
        let no_office = f.reason.contains("LibreOffice is needed");
        assert!(junk || no_office, "an ordinary entry failed: {} ({})", f.name, f.reason);
    }
    assert!(report.documents.len() >= 24 - 13 - 2, "the ordinary entries were converted: {report:?}");

    // Nothing escaped: no file anywhere but in storage, scratch and work areas.
    assert!(!Path::new("/etc/docket-evil.txt").exists());
    for name in ["escape.txt", "b.txt", "windows-escape.txt", "nested-escape.txt"] {
        assert!(
            !env.dir.path().join(name).exists()
                && !env.dir.path().parent().unwrap_or(Path::new("/")).join(name).exists()
        );
    }
    for entry in walk(env.dir.path()) {
        let rel = entry.strip_prefix(env.dir.path()).expect("under the test dir");
        let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        assert!(
            ["storage", "scratch", "work"].contains(&top.as_str()),
            "a file outside the pipeline's areas: {}",
            entry.display()
        );
    }
    env.cleanup().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                _ => out.push(path),
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_3000_file_archive_completes_and_its_report_lists_all_3000() {
    let mut options = TestOptions::default();
    options.vars.push(("CONVERT_PREFETCH", "4".into()));
    let mut env = TestEnv::new(options).await;
    let p = Patient::new("BIG");
    env.docex.set_profile(&p.first, &p.last, profile(3000, ArchiveKind::Text));
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["BIG"]).await;
    env.wait_finished(1, Duration::from_secs(900)).await;

    let report = report_of(&env, "BIG").await;
    assert_eq!(report.documents.len() + report.failures.len(), 3000);
    assert_eq!(report.documents.len(), 3000, "every text file converts: {:?}", report.failures.first());
    let mut keys: Vec<&str> = report.documents.iter().map(|d| d.pdf.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 3000, "every PDF has its own storage key");
    for d in report.documents.iter().step_by(100) {
        assert_valid_pdf(&env.storage_root().join(&d.pdf), d.pages);
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_needing_more_memory_than_the_cap_fails_alone_and_conversions_carry_on() {
    let mut options = TestOptions::default();
    options.vars.push(("CONVERT_MEMORY_LIMIT", "256MiB".into()));
    let mut env = TestEnv::new(options).await;
    let heavy = Patient::new("HEAVY");
    let after = Patient::new("AFTER");
    env.docex.set_profile(&heavy.first, &heavy.last, profile(8, ArchiveKind::Heavy));
    env.docex.set_profile(&after.first, &after.last, profile(3, ArchiveKind::Text));
    env.seed(&[heavy, after]).await;
    env.start_all(1).await;
    env.publish(&["HEAVY"]).await;
    env.wait_finished(1, Duration::from_secs(180)).await;

    let report = report_of(&env, "HEAVY").await;
    assert_eq!(report.failures.len(), 1, "only the huge scan fails: {report:?}");
    let failure = &report.failures[0];
    assert_eq!(failure.name, "scans/whole-body-scan.png");
    assert!(failure.reason.contains("memory cap"), "the reason says why: {}", failure.reason);
    assert_eq!(report.documents.len(), 7, "the other documents converted");

    // The convert service is alive and still converting.
    let convert = env.replicas(Stage::Convert)[0].http_addr;
    let health = reqwest::get(format!("http://{convert}/healthz")).await.expect("the convert service answers");
    assert!(health.status().is_success());
    // The operator sees it: the doc worker the scan overran was retired as
    // failed, and another started in its place.
    let metrics = reqwest::get(format!("http://{convert}/metrics")).await.expect("the convert service answers");
    let metrics = metrics.text().await.expect("its metrics");
    let workers =
        |event: &str| metric(&metrics, &format!("pipeline_converter_workers_total{{pool=\"doc\",event=\"{event}\"}}"));
    assert_eq!(workers("failed"), 1.0, "one doc worker retired as failed:\n{metrics}");
    assert!(workers("started") >= 2.0, "a doc worker started after it:\n{metrics}");
    env.publish(&["AFTER"]).await;
    env.wait_finished(2, Duration::from_secs(120)).await;
    assert_eq!(report_of(&env, "AFTER").await.documents.len(), 3);
    env.cleanup().await;
}
