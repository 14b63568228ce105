//! docket-fetch: downloads DocEx archives and extracts them safely.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    docket_fetch::service().main(docket_fetch::consumers).await
}
