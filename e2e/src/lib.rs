//! docket-e2e harness
