//! docket-shared
