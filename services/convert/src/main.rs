//! docket-convert binary: the stage service, or (as `child`) one isolated conversion, or (as
//! `doc-worker`) one warm converter judging and converting the documents the service sends it, or
//! (as `office-worker`) one warm LibreOffice converting the office documents the service sends it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // A child or worker must not start a runtime or thread pool: under an address-space
    // cap every extra thread and allocator arena eats into the document's budget.
    match args.get(1).map(String::as_str) {
        Some("child") => return docket_convert::engine::child_main(&args[2..]),
        Some("doc-worker") => return docket_convert::engine::doc_worker_main(&args[2..]),
        Some("office-worker") => return docket_convert::engine::office_worker_main(&args[2..]),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("docket-convert: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(docket_convert::stage::run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docket-convert: {e:#}");
            ExitCode::FAILURE
        }
    }
}
