//! docket CLI
fn main() {}
