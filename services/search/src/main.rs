//! docket-search: intake, TaskTracker task, DocumentExchange search.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    docket_search::service().main(docket_search::consumers).await
}
