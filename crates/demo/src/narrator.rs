//! What the demo prints, and what it proved.
//!
//! Everything goes through [`Narrator`], which also keeps a copy of the transcript so the leak
//! check at the end can prove that no password reached the screen either. Proofs are recorded
//! with their evidence (or the problem) and summed up in a table at the end.

use std::fmt::Display;

/// Where a proof belongs in the summary table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    MariaDb,
    Postgres,
    /// The whole run (the leak check).
    All,
}

struct Proof {
    what: String,
    column: Column,
    passed: bool,
}

#[derive(Default)]
pub struct Narrator {
    transcript: String,
    proofs: Vec<Proof>,
}

impl Narrator {
    /// One line, as is.
    pub fn line(&mut self, text: impl Display) {
        let text = text.to_string().trim_end().to_owned();
        println!("{text}");
        self.transcript.push_str(&text);
        self.transcript.push('\n');
    }

    /// A numbered part of the demo.
    pub fn section(&mut self, title: &str) {
        self.line("");
        self.line(format!("== {title} {}", "=".repeat(96usize.saturating_sub(title.len() + 4))));
    }

    /// A part of a section (an engine, a rotation).
    pub fn heading(&mut self, title: impl Display) {
        self.line("");
        self.line(format!("-- {title}"));
    }

    /// A detail, indented under the current heading.
    pub fn detail(&mut self, text: impl Display) {
        self.line(format!("   {text}"));
    }

    /// Several lines (a JSON document), each indented by `indent` spaces.
    pub fn block(&mut self, indent: usize, text: &str) {
        for line in text.lines() {
            self.line(format!("{}{line}", " ".repeat(indent)));
        }
    }

    /// Records a proof and prints its result: the evidence when it held, the problem when not.
    /// Returns whether it held.
    pub fn proof(&mut self, column: Column, what: &str, result: Result<String, String>) -> bool {
        let passed = result.is_ok();
        match result {
            Ok(evidence) => self.detail(format!("[ok] {what}: {evidence}")),
            Err(problem) => self.detail(format!("[FAILED] {what}: {problem}")),
        }
        self.proofs.push(Proof { what: what.to_string(), column, passed });
        passed
    }

    pub fn failures(&self) -> usize {
        self.proofs.iter().filter(|p| !p.passed).count()
    }

    pub fn transcript(&self) -> &str {
        &self.transcript
    }

    /// The table of what was proven, one row per proof, one column per engine.
    pub fn summary(&mut self) {
        let mut rows: Vec<(String, [Option<bool>; 2], Option<bool>)> = Vec::new();
        for proof in &self.proofs {
            let index = match rows.iter().position(|(what, _, _)| *what == proof.what) {
                Some(index) => index,
                None => {
                    rows.push((proof.what.clone(), [None, None], None));
                    rows.len() - 1
                }
            };
            let row = &mut rows[index];
            let cell = match proof.column {
                Column::MariaDb => &mut row.1[0],
                Column::Postgres => &mut row.1[1],
                Column::All => &mut row.2,
            };
            // A proof made more than once in a cell holds only if it held every time.
            *cell = Some(cell.unwrap_or(true) && proof.passed);
        }
        let width = rows.iter().map(|(what, _, _)| what.len()).max().unwrap_or(0).max(16);
        let mark = |cell: Option<bool>| match cell {
            Some(true) => "ok",
            Some(false) => "FAILED",
            None => "-",
        };
        self.line(format!("   {:width$}  {:10}  {:10}", "what was proven", "MariaDB", "PostgreSQL"));
        self.line(format!("   {}  {}  {}", "-".repeat(width), "-".repeat(10), "-".repeat(10)));
        for (what, engines, all) in rows {
            match all {
                Some(passed) => self.line(format!("   {what:width$}  {} (whole run)", mark(Some(passed)))),
                None => self.line(format!("   {what:width$}  {:10}  {:10}", mark(engines[0]), mark(engines[1]))),
            }
        }
    }
}
