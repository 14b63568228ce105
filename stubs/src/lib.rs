//! docket-stubs
