//! [`Engine`]: one document to PDF as the service does it. Every document is judged, and all but
//! office documents converted, in a capped one-shot child ([`crate::convert_isolated`]'s); office
//! documents go on to a warm office worker ([`crate::OfficePool`]), so LibreOffice starts once per
//! worker instead of once per document.

use std::path::{Path, PathBuf};

use crate::office::pool::{OfficePool, PoolSettings};
use crate::{ConvertError, Converted, Limits};

/// The conversion engine: the service's binary for its children and workers, the caps, and the pool.
pub struct Engine {
    exe: PathBuf,
    limits: Limits,
    office: OfficePool,
}

impl Engine {
    /// `exe` is the binary whose `child` and `office-worker` modes convert (the running service).
    pub fn new(exe: PathBuf, office: PoolSettings) -> Engine {
        let limits = office.limits.clone();
        Engine { office: OfficePool::new(exe.clone(), office), exe, limits }
    }

    /// Converts `input` (a local file) into a PDF at `output`. `name` is the document's name in its
    /// archive: a tie-breaker for its type and the header of text pages. No partial PDF is left
    /// behind on failure.
    pub async fn convert(&self, input: &Path, output: &Path, name: &str) -> Result<Converted, ConvertError> {
        let report = crate::isolate::run_judged(&self.exe, input, output, name, &self.limits).await;
        let result = match report.result {
            Ok(judged) if report.office => self
                .office
                .convert(judged.kind, input, output)
                .await
                .map(|pages| Converted { pages, kind: judged.kind }),
            other => other,
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(output).await;
        }
        result
    }

    /// The warm office workers (their counters, for metrics and tests).
    pub fn office(&self) -> &OfficePool {
        &self.office
    }
}
