//! docket-report
fn main() {}
