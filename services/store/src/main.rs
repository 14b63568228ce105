//! docket-store: writes originals and PDFs to the storage service.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    docket_store::service().main(docket_store::consumers).await
}
