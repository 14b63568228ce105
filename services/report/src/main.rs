//! docket-report: statuses and the report, to the database and TaskTracker.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    docket_report::service().main(docket_report::consumers).await
}
