//! docket-status
fn main() {}
