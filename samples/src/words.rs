//! Made-up clinical wording for the sample documents, in several scripts.
//!
//! Everything here is invented; the people are placeholders, never patients.

use rand::Rng;
use rand::seq::IndexedRandom;

/// Placeholder people named inside documents (never the searched patient).
pub(crate) const PEOPLE: &[(&str, &str)] = &[
    ("Jane", "Example"),
    ("Max", "Mustermann"),
    ("Erika", "Musterfrau"),
    ("José", "García"),
    ("Ιωάννα", "Παπαδοπούλου"),
    ("Иван", "Иванов"),
    ("伟", "李"),
];

const OPENINGS: &[&str] = &[
    "Patient seen in clinic today",
    "Follow-up visit after discharge",
    "Referred by the general practitioner",
    "Telephone consultation",
    "Admitted through the emergency department",
];

const FINDINGS: &[&str] = &[
    "blood pressure {a}/{b} mmHg",
    "heart rate {c} bpm, regular",
    "haemoglobin {d}.{e} g/dL",
    "temperature 3{e}.{f} C",
    "no focal neurological deficit",
    "lungs clear on auscultation",
    "mild tenderness in the right lower quadrant",
    "wound healing well, no signs of infection",
    "creatinine {c} umol/L",
    "HbA1c {f}.{e} %",
];

const PLANS: &[&str] = &[
    "Continue current medication.",
    "Review again in {f} weeks.",
    "Blood tests ordered; results to follow.",
    "Physiotherapy referral made.",
    "Advised to return if symptoms worsen.",
    "Dose of ramipril increased to {f} mg once daily.",
];

/// Lines in other scripts, so converters meet accents, Greek, Cyrillic and CJK.
pub(crate) const INTERNATIONAL: &[&str] = &[
    "Befund: Keine Auffälligkeiten. Größe 182 cm, Gewicht 79 kg.",
    "Röntgen Thorax: Herz normal groß, keine Stauungszeichen.",
    "Résumé : état général conservé, fièvre à 38,5 °C, à revoir dans 8 jours.",
    "Diagnóstico: bronquitis aguda. Próxima cita en señal de mejoría.",
    "Διάγνωση: οξεία βρογχίτιδα. Θεραπεία: αμοξικιλλίνη 500 mg.",
    "Диагноз: острый бронхит. Рекомендовано: покой, обильное питьё.",
    "诊断：急性支气管炎。建议休息，多喝水。",
    "検査結果は正常です。次回の診察は二週間後です。",
    "진단: 급성 기관지염. 충분한 휴식을 권장합니다.",
    "Zusammenfassung für Dr. Müller – Überweisung zur Kardiologie.",
];

/// Lines in Latin-1 only, for the PDFs whose standard font knows no more.
pub(crate) const LATIN1: &[&str] = &[
    "Befund: Keine Auffälligkeiten. Größe 182 cm.",
    "Résumé : état général conservé, fièvre à 38,5 °C.",
    "Diagnóstico: bronquitis aguda, señal de mejoría.",
    "Überweisung zur Kardiologie, Dr. Müller.",
];

/// Section titles shared by the structured formats.
pub(crate) const SECTIONS: &[&str] = &["History", "Examination", "Investigations", "Assessment", "Plan", "Medication"];

/// Document titles.
pub(crate) const TITLES: &[&str] =
    &["Discharge Summary", "Outpatient Letter", "Laboratory Report", "Radiology Report", "Referral", "Progress Note"];

fn fill(template: &str, rng: &mut impl Rng) -> String {
    template
        .replace("{a}", &rng.random_range(100..180).to_string())
        .replace("{b}", &rng.random_range(60..100).to_string())
        .replace("{c}", &rng.random_range(55..120).to_string())
        .replace("{d}", &rng.random_range(9..17).to_string())
        .replace("{e}", &rng.random_range(0..10).to_string())
        .replace("{f}", &rng.random_range(2..9).to_string())
}

/// One made-up clinical sentence (ASCII).
pub(crate) fn sentence(rng: &mut impl Rng) -> String {
    match rng.random_range(0..3) {
        0 => {
            let opening = one(rng, OPENINGS);
            let finding = one(rng, FINDINGS);
            format!("{opening}: {}.", fill(finding, rng))
        }
        1 => {
            let f = fill(one(rng, FINDINGS), rng);
            let mut c = f.chars();
            let first = c.next().map(|ch| ch.to_ascii_uppercase()).unwrap_or('N');
            format!("{first}{}.", c.as_str())
        }
        _ => {
            let plan = one(rng, PLANS);
            fill(plan, rng)
        }
    }
}

/// A paragraph of `n` sentences (ASCII).
pub(crate) fn paragraph(rng: &mut impl Rng, n: usize) -> String {
    (0..n).map(|_| sentence(rng)).collect::<Vec<_>>().join(" ")
}

/// Picks one item of a non-empty list.
pub(crate) fn one<'a>(rng: &mut impl Rng, list: &[&'a str]) -> &'a str {
    list.choose(rng).expect("word lists are not empty")
}

/// A placeholder person's full name.
pub(crate) fn person(rng: &mut impl Rng) -> String {
    let (first, last) = PEOPLE.choose(rng).expect("the list of people is not empty");
    format!("{first} {last}")
}

/// A plausible date, `YYYY-MM-DD`.
pub(crate) fn date(rng: &mut impl Rng) -> String {
    format!("{}-{:02}-{:02}", rng.random_range(2012..2025), rng.random_range(1..13), rng.random_range(1..29))
}

/// Escapes text for XML and HTML.
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
