//! docket-convert
fn main() {}
