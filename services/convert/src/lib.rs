//! docket-convert: the convert stage, wiring the conversion engine (`docket-engine`) to
//! `docket.convert` and its urgent lane. The engine does the conversions; see its crate.

pub mod stage;

pub use docket_engine as engine;
pub use stage::{consumers, service};
