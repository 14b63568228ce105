//! The report of a run: every converted document with its storage key and
//! page count, every failure with its reason, and a summary for staff.

use docket_shared::{
    db::runs::{FOUND, Run},
    outside::tasktracker::{Report, ReportDocument, ReportFailure},
};
use sqlx::PgPool;

/// A document row: name, state, PDF key, pages, failure reason.
type Row = (String, String, Option<String>, Option<i32>, Option<String>);

pub async fn build(pool: &PgPool, run: &Run, status: &str) -> Result<Report, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT name, state, pdf_key, pages, reason FROM docket.documents WHERE run_id = $1 ORDER BY doc",
    )
    .bind(run.run_id)
    .fetch_all(pool)
    .await?;
    let mut report = Report::default();
    for (name, state, pdf, pages, reason) in rows {
        match (state.as_str(), pdf) {
            ("done", Some(pdf)) => {
                report.documents.push(ReportDocument { name, pdf, pages: pages.map(|p| p.max(1) as u32) })
            }
            _ => report.failures.push(ReportFailure {
                name,
                reason: reason.unwrap_or_else(|| "not converted (no reason recorded)".into()),
            }),
        }
    }
    report.summary = summary(&run.patient_id, status, report.documents.len(), report.failures.len());
    Ok(report)
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
}
