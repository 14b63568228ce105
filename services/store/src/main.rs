//! docket-store
fn main() {}
