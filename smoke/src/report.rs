//! The checks' results: one row per check, printed as it is decided and as an aligned
//! table at the end.

use std::fmt;

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The deployment does what the offline tests assume.
    Pass,
    /// It does not (or the check could not run because something it needs failed).
    Fail,
    /// Not checked: an option it needs was not given, or the delivery mode has no such
    /// behaviour. The row says which.
    Skip,
    /// An observation with no right answer, reported with advice.
    Info,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: the table pads this column with `{:<6}`.
        f.pad(match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
            Self::Info => "INFO",
        })
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The check, as named in [`crate::checks::names`].
    pub name: &'static str,
    /// Its outcome.
    pub outcome: Outcome,
    /// What was seen (statuses, headers, keys), or why it was skipped.
    pub seen: String,
}

/// Every row of a run, in order.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
    echo: bool,
}

impl Report {
    /// An empty report; with `echo`, each row is printed as it is added.
    pub fn new(echo: bool) -> Self {
        Self { rows: Vec::new(), echo }
    }

    /// Adds a row.
    pub fn push(&mut self, name: &'static str, outcome: Outcome, seen: impl Into<String>) {
        let row = Row { name, outcome, seen: seen.into() };
        if self.echo {
            println!("{} {}: {}", row.outcome, row.name, row.seen);
        }
        self.rows.push(row);
    }

    /// The rows so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The row of the check `name` (the first one, if several).
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.outcome == Outcome::Fail)
    }

    /// The process's exit status: 1 if any check failed, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failed())
    }

    /// The rows as a table: `check | result | seen`, the first two columns padded.
    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(0).max(5);
        let mut out = format!("{:<width$} | result | seen\n", "check");
        out.push_str(&format!("{}-+--------+-----\n", "-".repeat(width)));
        for row in &self.rows {
            out.push_str(&format!("{:<width$} | {:<6} | {}\n", row.name, row.outcome, row.seen));
        }
        let count = |o: Outcome| self.rows.iter().filter(|r| r.outcome == o).count();
        out.push_str(&format!(
            "{} passed, {} failed, {} skipped, {} info\n",
            count(Outcome::Pass),
            count(Outcome::Fail),
            count(Outcome::Skip),
            count(Outcome::Info)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_and_a_fail_sets_the_exit_status() {
        let mut report = Report::new(false);
        report.push("short", Outcome::Pass, "200");
        report.push("a longer check", Outcome::Skip, "needs --token");
        assert_eq!(report.exit_code(), 0);
        report.push("x", Outcome::Fail, "403");
        assert_eq!(report.exit_code(), 1);
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "check          | result | seen");
        assert_eq!(lines[2], "short          | PASS   | 200");
        assert_eq!(lines[3], "a longer check | SKIP   | needs --token");
        assert_eq!(lines[4], "x              | FAIL   | 403");
        assert_eq!(lines[5], "1 passed, 1 failed, 1 skipped, 0 info");
        assert_eq!(report.row("x").map(|r| r.outcome), Some(Outcome::Fail));
    }
}
