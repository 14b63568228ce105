//! Text-based samples: plain UTF-8 text, HTML with parts to drop, and CDA/CCD clinical XML.

use std::fmt::Write as _;

use rand::Rng;

use super::words::{self, xml_escape};
use crate::util::rng;

/// A plain UTF-8 text note with accents, Greek, Cyrillic and CJK lines.
pub fn text(seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut s = String::new();
    let _ = writeln!(s, "{}\n{}\n", words::one(&mut r, words::TITLES).to_uppercase(), words::date(&mut r));
    for _ in 0..r.random_range(2..7) {
        let _ = writeln!(s, "{}:", words::one(&mut r, words::SECTIONS));
        let n = r.random_range(2..6);
        for line in super::pdf::wrap(&words::paragraph(&mut r, n), 76) {
            let _ = writeln!(s, "  {line}");
        }
        let _ = writeln!(s, "  {}\n", words::one(&mut r, words::INTERNATIONAL));
    }
    let _ = writeln!(s, "Signed: {}", words::person(&mut r));
    s.into_bytes()
}

/// An HTML page whose head, style, script and comments a converter must drop;
/// it also points at a remote image a converter must not fetch.
pub fn html(seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let title = words::one(&mut r, words::TITLES);
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n\
         <style>\n  body {{ font-family: Georgia, serif; margin: 2em; }}\n  .hidden-style-marker {{ color: red; }}\n\
         </style>\n<script>\n  var trackingMarker = \"SCRIPT TEXT MUST NOT APPEAR\";\n  document.title = trackingMarker;\n\
         </script>\n</head>\n<body>\n<!-- portal export, comment must not appear -->\n<h1>{t}</h1>\n\
         <p class=\"meta\">{who} &middot; {date}</p>\n",
        t = xml_escape(title),
        who = xml_escape(&words::person(&mut r)),
        date = words::date(&mut r),
    );
    for _ in 0..r.random_range(2..5) {
        let _ = write!(
            s,
            "<h2>{}</h2>\n<p>{} <em>{}</em></p>\n",
            words::one(&mut r, words::SECTIONS),
            xml_escape(&words::paragraph(&mut r, 3)),
            xml_escape(words::one(&mut r, words::INTERNATIONAL))
        );
    }
    s.push_str("<table border=\"1\">\n<tr><th>Test</th><th>Result</th><th>Unit</th></tr>\n");
    for (test, unit) in [("Haemoglobin", "g/dL"), ("Sodium", "mmol/L"), ("CRP", "mg/L")] {
        let _ = writeln!(s, "<tr><td>{test}</td><td>{}</td><td>{unit}</td></tr>", r.random_range(1..150));
    }
    s.push_str("</table>\n<ul><li>Ω-3 supplement</li><li>Ibuprofen 400&nbsp;mg</li></ul>\n");
    s.push_str("<img src=\"https://tracker.invalid/pixel.png\" alt=\"\" width=\"1\" height=\"1\">\n</body>\n</html>\n");
    s.into_bytes()
}

/// LOINC codes and template ids of the sections a CCD usually carries.
const CDA_SECTIONS: &[(&str, &str, &str)] = &[
    ("48765-2", "2.16.840.1.113883.10.20.22.2.6.1", "Allergies and Adverse Reactions"),
    ("10160-0", "2.16.840.1.113883.10.20.22.2.1.1", "Medications"),
    ("11450-4", "2.16.840.1.113883.10.20.22.2.5.1", "Problem List"),
    ("30954-2", "2.16.840.1.113883.10.20.22.2.3.1", "Results"),
    ("8716-3", "2.16.840.1.113883.10.20.22.2.4.1", "Vital Signs"),
];

/// A plausible HL7 CDA R2 Continuity of Care Document with narrative sections.
pub fn cda(seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let (given, family) = words::PEOPLE[r.random_range(0..words::PEOPLE.len())];
    let when = words::date(&mut r).replace('-', "");
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<?xml-stylesheet type=\"text/xsl\" href=\"CDA.xsl\"?>\n\
         <ClinicalDocument xmlns=\"urn:hl7-org:v3\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n\
         \x20 <realmCode code=\"US\"/>\n  <typeId root=\"2.16.840.1.113883.1.3\" extension=\"POCD_HD000040\"/>\n\
         \x20 <templateId root=\"2.16.840.1.113883.10.20.22.1.1\"/>\n  <templateId root=\"2.16.840.1.113883.10.20.22.1.2\"/>\n\
         \x20 <id root=\"2.16.840.1.113883.19.5\" extension=\"{id}\"/>\n\
         \x20 <code code=\"34133-9\" codeSystem=\"2.16.840.1.113883.6.1\" codeSystemName=\"LOINC\" displayName=\"Summarization of Episode Note\"/>\n\
         \x20 <title>Continuity of Care Document</title>\n  <effectiveTime value=\"{when}103000+0100\"/>\n\
         \x20 <confidentialityCode code=\"N\" codeSystem=\"2.16.840.1.113883.5.25\"/>\n  <languageCode code=\"en-US\"/>\n\
         \x20 <recordTarget>\n    <patientRole>\n      <id root=\"2.16.840.1.113883.19.5.99999.2\" extension=\"{mrn}\"/>\n\
         \x20     <patient>\n        <name><given>{given}</given><family>{family}</family></name>\n\
         \x20       <administrativeGenderCode code=\"{sex}\" codeSystem=\"2.16.840.1.113883.5.1\"/>\n\
         \x20       <birthTime value=\"19{yy:02}0{mm}15\"/>\n      </patient>\n    </patientRole>\n  </recordTarget>\n\
         \x20 <author>\n    <time value=\"{when}\"/>\n    <assignedAuthor>\n      <id root=\"2.16.840.1.113883.4.6\" extension=\"{npi}\"/>\n\
         \x20     <assignedPerson><name><prefix>Dr.</prefix><given>Erika</given><family>Musterfrau</family></name></assignedPerson>\n\
         \x20   </assignedAuthor>\n  </author>\n\
         \x20 <custodian><assignedCustodian><representedCustodianOrganization>\n\
         \x20   <id root=\"2.16.840.1.113883.19.5\"/><name>Example General Hospital</name>\n\
         \x20 </representedCustodianOrganization></assignedCustodian></custodian>\n\
         \x20 <component>\n    <structuredBody>\n",
        id = r.random::<u32>(),
        mrn = r.random_range(100_000..999_999),
        sex = if r.random_bool(0.5) { "F" } else { "M" },
        yy = r.random_range(30..99),
        mm = r.random_range(1..10),
        npi = r.random_range(1_000_000_000u64..1_999_999_999),
    );
    let chosen: Vec<_> = CDA_SECTIONS.iter().filter(|_| r.random_bool(0.8)).collect();
    for &&(loinc, template, title) in &chosen {
        let _ = write!(
            s,
            "      <component>\n        <section>\n          <templateId root=\"{template}\"/>\n\
             \x20         <code code=\"{loinc}\" codeSystem=\"2.16.840.1.113883.6.1\"/>\n          <title>{title}</title>\n\
             \x20         <text>\n            <table border=\"1\">\n              <thead><tr><th>Item</th><th>Detail</th></tr></thead>\n\
             \x20             <tbody>\n"
        );
        for _ in 0..r.random_range(1..4) {
            let _ = writeln!(
                s,
                "                <tr><td>{}</td><td>{}</td></tr>",
                xml_escape(&words::sentence(&mut r)),
                xml_escape(words::one(&mut r, words::INTERNATIONAL))
            );
        }
        s.push_str(
            "              </tbody>\n            </table>\n          </text>\n        </section>\n      </component>\n",
        );
    }
    s.push_str("    </structuredBody>\n  </component>\n</ClinicalDocument>\n");
    s.into_bytes()
}
