//! The report of a run: every converted document with its storage key and
//! page count, every failure with its reason, and a summary for staff. A
//! cancelled run's report says so, and what had been done.

use docket_shared::{
    outside::tasktracker::{Report, ReportDocument, ReportFailure},
    run::{FOUND, Run, State},
};
use sqlx::PgPool;

/// A document row: name, state, PDF key, pages, failure reason.
type Row = (String, String, Option<String>, Option<i32>, Option<String>);

/// Why a document of a cancelled run has no PDF.
const NOT_REACHED: &str = "not converted: the run was cancelled first";

pub async fn build(pool: &PgPool, run: &Run, status: Option<&str>) -> Result<Report, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT name, state, pdf_key, pages, reason FROM docket.documents WHERE run_id = $1 ORDER BY doc",
    )
    .bind(run.run_id)
    .fetch_all(pool)
    .await?;
    let mut report = Report::default();
    let mut not_reached = 0;
    for (name, state, pdf, pages, reason) in rows {
        match (state.as_str(), pdf) {
            ("done", Some(pdf)) => {
                report.documents.push(ReportDocument { name, pdf, pages: pages.map(|p| p.max(1) as u32) })
            }
            ("done" | "failed", _) => report.failures.push(ReportFailure {
                name,
                reason: reason.unwrap_or_else(|| "not converted (no reason recorded)".into()),
            }),
            _ => {
                not_reached += 1;
                report.failures.push(ReportFailure { name, reason: NOT_REACHED.into() });
            }
        }
    }
    let counts = Counts { converted: report.documents.len(), failed: report.failures.len() - not_reached, not_reached };
    report.summary = match run.cancelled_in.as_deref().and_then(State::parse) {
        Some(at) if run.cancelled() => cancelled(&run.patient_id, at, counts),
        _ => summary(&run.patient_id, status.unwrap_or_default(), counts.converted, counts.failed),
    };
    Ok(report)
}

#[derive(Clone, Copy)]
struct Counts {
    converted: usize,
    failed: usize,
    not_reached: usize,
}

pub fn summary(patient_id: &str, status: &str, converted: usize, failed: usize) -> String {
    if status != FOUND {
        return format!("No documents were found for patient {patient_id}.");
    }
    let total = converted + failed;
    let mut text = format!(
        "{total} document{} found for patient {patient_id}: {converted} converted to PDF and stored",
        if total == 1 { "" } else { "s" }
    );
    if failed > 0 {
        text.push_str(&format!(", {failed} could not be converted (see failures)"));
    }
    text.push('.');
    text
}

fn cancelled(patient_id: &str, at: State, c: Counts) -> String {
    let when = match at {
        State::Task | State::Search => "before its DocEx search started",
        State::Poll => "while its DocEx search was running",
        State::Fetch => "while its archive was being downloaded",
        _ => "while its documents were being converted",
    };
    let mut text = format!("Cancelled by an operator {when}, for patient {patient_id}.");
    let total = c.converted + c.failed + c.not_reached;
    if total == 0 {
        text.push_str(" No documents had been retrieved.");
        return text;
    }
    text.push_str(&format!(
        " {total} document{} had been found: {} converted to PDF and stored",
        if total == 1 { "" } else { "s" },
        c.converted
    ));
    if c.failed > 0 {
        text.push_str(&format!(", {} could not be converted", c.failed));
    }
    if c.not_reached > 0 {
        text.push_str(&format!(", {} not converted because of the cancel", c.not_reached));
    }
    text.push_str("; what was stored stays stored.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_what_was_found() {
        assert_eq!(summary("P1", "DOCUMENTS_NOT_FOUND", 0, 0), "No documents were found for patient P1.");
        assert_eq!(
            summary("P1", FOUND, 2, 1),
            "3 documents found for patient P1: 2 converted to PDF and stored, 1 could not be converted (see failures)."
        );
        assert_eq!(summary("P1", FOUND, 1, 0), "1 document found for patient P1: 1 converted to PDF and stored.");
    }

    #[test]
    fn a_cancelled_run_says_when_and_what_had_been_done() {
        let none = Counts { converted: 0, failed: 0, not_reached: 0 };
        assert_eq!(
            cancelled("P1", State::Search, none),
            "Cancelled by an operator before its DocEx search started, for patient P1. No documents had been retrieved."
        );
        let some = Counts { converted: 2, failed: 1, not_reached: 3 };
        assert_eq!(
            cancelled("P1", State::Documents, some),
            "Cancelled by an operator while its documents were being converted, for patient P1. 6 documents had been \
             found: 2 converted to PDF and stored, 1 could not be converted, 3 not converted because of the cancel; \
             what was stored stays stored."
        );
    }
}
