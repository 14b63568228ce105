//! docket-search
fn main() {}
