//! Storage and scratch on S3 (the production layout): every original and PDF
//! lands in the bucket, and a run leaves nothing behind in scratch.

use std::time::Duration;

use docket_e2e::{Patient, TestEnv, TestOptions, s3::Moto};
use docket_shared::storage::Store;
use docket_stubs::ArchiveKind;

use crate::common::{assert_valid_pdf, one_task_one_report_each, profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_storage_and_scratch_on_s3_every_original_and_pdf_lands_in_the_bucket() {
    let moto = Moto::start(&["records", "scratch"]).await;
    let mut options = TestOptions::default();
    options.vars.extend(moto.vars());
    options.vars.push(("STORAGE_URL", "s3://records/docket".into()));
    options.vars.push(("SCRATCH_URL", "s3://scratch".into()));
    let mut env = TestEnv::new(options).await;
    let p = Patient::new("P-S3");
    env.docex.set_profile(&p.first, &p.last, profile(12, ArchiveKind::Mixed));
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["P-S3"]).await;
    env.wait_finished(1, Duration::from_secs(180)).await;

    let tasks = env.tracker.tasks();
    one_task_one_report_each(&tasks, 1);
    let report = &tasks[0].reports[0];
    assert_eq!(report.documents.len() + report.failures.len(), 12);
    let settings = env.settings();
    let storage = Store::open(&settings.storage_url, "STORAGE_URL", &settings.aws).expect("opening the bucket");
    for d in &report.documents {
        let pdf = storage.get_bytes(&d.pdf).await.unwrap_or_else(|e| panic!("{} is in the bucket: {e}", d.pdf));
        let local = env.dir.path().join("check.pdf");
        std::fs::write(&local, &pdf).expect("writing a copy");
        assert_valid_pdf(&local, d.pages);
    }
    let originals: Vec<String> =
        sqlx::query_scalar("SELECT original_key FROM docket.documents WHERE original_key IS NOT NULL")
            .fetch_all(&env.pool)
            .await
            .expect("reading documents");
    assert!(!originals.is_empty());
    for key in originals {
        assert!(storage.exists(&key).await.expect("asking the bucket"), "original {key} is in the bucket");
    }
    let scratch = Store::open(&settings.scratch_url, "SCRATCH_URL", &settings.aws).expect("opening scratch");
    assert_eq!(scratch.delete_prefix("runs").await.expect("listing scratch"), 0, "the run cleaned its scratch area");
    env.cleanup().await;
    drop(moto);
}
