//! The results: one JSON document (for comparing runs) and a Markdown report (pasted into
//! BENCHMARKS.md as is, and printed), built section by section. The report opens with the machine
//! and its load, then one table of every figure against issue 8's target, then the sections.

use serde_json::{Map, Value, json};

#[derive(Default)]
pub struct Report {
    json: Map<String, Value>,
    header: String,
    summary: Vec<TargetRow>,
    sections: String,
}

/// One line of the summary: a figure, what was measured, the target, and the verdict.
struct TargetRow {
    figure: String,
    measured: String,
    target: String,
    verdict: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    /// The issue asks for the figure, with no target (reported, phases explained).
    Reported,
}

impl Verdict {
    /// Lower is better: `value <= target` meets it.
    pub fn of(value: f64, target: f64) -> Verdict {
        if value <= target { Verdict::Met } else { Verdict::NotMet }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "**NOT met**",
            Verdict::Reported => "reported",
        }
    }
}

impl Report {
    /// A section: its figures as JSON under `key`, and a Markdown heading, notes and table.
    pub fn section(&mut self, key: &str, title: &str, notes: &[String], table: &Table, figures: Value) {
        self.json.insert(key.to_owned(), figures);
        self.sections.push_str(&format!("\n### {title}\n\n"));
        for note in notes {
            self.sections.push_str(note);
            self.sections.push_str("\n\n");
        }
        self.sections.push_str(&table.to_markdown());
    }

    /// A figure for the summary table against its target.
    pub fn target(&mut self, figure: impl Into<String>, measured: impl Into<String>, target: impl Into<String>, verdict: Verdict) {
        self.summary.push(TargetRow { figure: figure.into(), measured: measured.into(), target: target.into(), verdict });
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.json.insert(key.to_owned(), value);
    }

    pub fn set_header(&mut self, text: String) {
        self.header = text;
    }

    pub fn json(&self) -> Value {
        let mut json = self.json.clone();
        let summary: Vec<Value> = self.summary.iter().map(|row| json!({"figure": row.figure, "measured": row.measured, "target": row.target, "verdict": format!("{:?}", row.verdict)})).collect();
        json.insert("summary".into(), Value::Array(summary));
        Value::Object(json)
    }

    pub fn markdown(&self) -> String {
        let mut table = Table::new(&["figure", "measured (median / p95)", "target", ""]);
        for row in &self.summary {
            table.row(vec![row.figure.clone(), row.measured.clone(), row.target.clone(), row.verdict.as_str().into()]);
        }
        let summary = if self.summary.is_empty() { String::new() } else { format!("\n### Figures against the targets\n\n{}", table.to_markdown()) };
        format!("{}{summary}{}", self.header, self.sections)
    }

    /// Markdown under the last section (a sub-table).
    pub fn push_markdown(&mut self, text: &str) {
        self.sections.push_str(text);
    }
}

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("| {} |\n|{}|\n", self.header.join(" | "), self.header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }
}

/// `met (8 ≤ 8)` / `**NOT met** (9 > 8)`: a figure against its target (lower is better).
pub fn against(value: f64, target: f64, unit: &str) -> String {
    if value.is_nan() {
        return "-".into();
    }
    let shown = if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") };
    if value <= target { format!("met ({shown}{unit} ≤ {target}{unit})") } else { format!("**NOT met** ({shown}{unit} > {target}{unit})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_markdown() {
        let mut table = Table::new(&["a", "b"]);
        table.row(vec!["1".into(), "2".into()]);
        assert_eq!(table.to_markdown(), "| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert_eq!(against(8.0, 8.0, ""), "met (8 ≤ 8)");
        assert_eq!(against(9.5, 8.0, " ms"), "**NOT met** (9.5 ms > 8 ms)");
    }

    #[test]
    fn the_summary_comes_before_the_sections() {
        let mut report = Report::default();
        report.set_header("# head\n".into());
        report.section("s", "Section", &[], &Table::new(&["x"]), Value::Null);
        report.target("init", "10 / 11", "≤ 12 ms", Verdict::of(10.0, 12.0));
        report.target("calls", "9", "≤ 8", Verdict::of(9.0, 8.0));
        let markdown = report.markdown();
        let summary = markdown.find("Figures against the targets").unwrap();
        assert!(summary < markdown.find("### Section").unwrap());
        assert!(markdown.contains("| init | 10 / 11 | ≤ 12 ms | met |"), "{markdown}");
        assert!(markdown.contains("| calls | 9 | ≤ 8 | **NOT met** |"), "{markdown}");
    }
}
