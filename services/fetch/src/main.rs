//! docket-fetch
fn main() {}
