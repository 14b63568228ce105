//! docket-status: polls DocumentExchange jobs until they finish.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    docket_status::service().main(docket_status::consumers).await
}
