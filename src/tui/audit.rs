//! The audit report screen's state: the report of a finished `ttl-audit` run, the order of
//! its pattern table (by keys, keys without TTL, memory or name; either way round) and the
//! selected pattern, whose TTL histogram, types and examples the screen shows.

use crate::audit::aggregate::PatternStats;
use crate::audit::report::AuditReport;
use std::cmp::Ordering;

/// The column the pattern table is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    NoTtl,
    Keys,
    Memory,
    Pattern,
}

impl SortBy {
    fn next(self) -> SortBy {
        match self {
            SortBy::NoTtl => SortBy::Keys,
            SortBy::Keys => SortBy::Memory,
            SortBy::Memory => SortBy::Pattern,
            SortBy::Pattern => SortBy::NoTtl,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::NoTtl => "no TTL",
            SortBy::Keys => "keys",
            SortBy::Memory => "memory",
            SortBy::Pattern => "pattern",
        }
    }

    /// The natural direction: biggest first for counts, A–Z for names.
    fn descending_first(self) -> bool {
        self != SortBy::Pattern
    }

    fn compare(self, a: &PatternStats, b: &PatternStats) -> Ordering {
        match self {
            SortBy::NoTtl => a.no_ttl.cmp(&b.no_ttl),
            SortBy::Keys => a.keys.cmp(&b.keys),
            SortBy::Memory => a
                .memory_bytes
                .unwrap_or(0)
                .cmp(&b.memory_bytes.unwrap_or(0)),
            SortBy::Pattern => a.pattern.cmp(&b.pattern),
        }
    }
}

/// The audit report screen.
#[derive(Debug, Clone)]
pub struct AuditView {
    pub report: AuditReport,
    pub sort: SortBy,
    pub descending: bool,
    /// Position in the displayed order.
    pub selected: usize,
    /// Indices into `report.patterns`, in display order.
    order: Vec<usize>,
}

impl AuditView {
    /// Leaks first: ordered by keys without TTL, most first.
    pub fn new(report: AuditReport) -> AuditView {
        let mut v = AuditView {
            order: (0..report.patterns.len()).collect(),
            report,
            sort: SortBy::NoTtl,
            descending: true,
            selected: 0,
        };
        v.reorder();
        v.selected = 0;
        v
    }

    /// The patterns in display order.
    pub fn rows(&self) -> impl Iterator<Item = &PatternStats> {
        self.order
            .iter()
            .filter_map(|i| self.report.patterns.get(*i))
    }

    pub fn selected_pattern(&self) -> Option<&PatternStats> {
        self.order
            .get(self.selected)
            .and_then(|i| self.report.patterns.get(*i))
    }

    /// Whether keys live outside database 0 (then the table shows a db column).
    pub fn multi_db(&self) -> bool {
        self.report.patterns.iter().any(|p| p.db != 0)
    }

    /// The next sort column, in its natural direction; the selected pattern stays selected.
    pub fn cycle_sort(&mut self) {
        self.sort = self.sort.next();
        self.descending = self.sort.descending_first();
        self.reorder();
    }

    /// The same column the other way round.
    pub fn reverse(&mut self) {
        self.descending = !self.descending;
        self.reorder();
    }

    /// Moves the selection by `delta` rows, clamped to the table.
    pub fn move_by(&mut self, delta: isize) {
        let last = self.order.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    pub fn top(&mut self) {
        self.selected = 0;
    }

    pub fn bottom(&mut self) {
        self.selected = self.order.len().saturating_sub(1);
    }

    fn reorder(&mut self) {
        let keep = self.order.get(self.selected).copied();
        let (sort, descending, patterns) = (self.sort, self.descending, &self.report.patterns);
        self.order.sort_by(|a, b| {
            let (pa, pb) = (&patterns[*a], &patterns[*b]);
            let o = sort.compare(pa, pb);
            let o = if descending { o.reverse() } else { o };
            // Stable ties: by name, then database.
            o.then_with(|| pa.pattern.cmp(&pb.pattern))
                .then(pa.db.cmp(&pb.db))
        });
        self.selected = keep
            .and_then(|k| self.order.iter().position(|i| *i == k))
            .unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(name: &str, keys: u64, no_ttl: u64, memory: Option<u64>) -> PatternStats {
        PatternStats {
            pattern: name.into(),
            keys,
            no_ttl,
            memory_bytes: memory,
            ..PatternStats::default()
        }
    }

    fn view() -> AuditView {
        let report: AuditReport = serde_json::from_value(serde_json::json!({
            "total_keys": 0, "keys_without_ttl": 0, "dbsize_start": 0, "dbsize_end": 0,
            "complete": true, "incomplete_reasons": [], "dedup": "exact",
            "duplicates_possible": false, "duration_ms": 1, "memory_sampled": true,
            "memory_bytes": null, "overflow_keys": 0, "patterns": [], "top_keys": [],
            "findings": [], "shards": []
        }))
        .expect("a report");
        let mut report = report;
        report.patterns = vec![
            pattern("b:{n}", 10, 1, Some(500)),
            pattern("a:{n}", 30, 5, None),
            pattern("c:{n}", 20, 9, Some(100)),
        ];
        AuditView::new(report)
    }

    fn names(v: &AuditView) -> Vec<&str> {
        v.rows().map(|p| p.pattern.as_str()).collect()
    }

    #[test]
    fn sorts_cycle_and_reverse_keeping_the_selection() {
        let mut v = view();
        assert_eq!(names(&v), ["c:{n}", "a:{n}", "b:{n}"], "leaks first");
        assert_eq!(
            v.selected_pattern().map(|p| p.pattern.as_str()),
            Some("c:{n}"),
            "the top row"
        );
        v.move_by(1);
        assert_eq!(
            v.selected_pattern().map(|p| p.pattern.as_str()),
            Some("a:{n}")
        );
        v.cycle_sort();
        assert_eq!(
            (v.sort, names(&v)),
            (SortBy::Keys, vec!["a:{n}", "c:{n}", "b:{n}"])
        );
        assert_eq!(v.selected, 0, "the selected pattern moved with its row");
        v.cycle_sort();
        assert_eq!(
            names(&v),
            ["b:{n}", "c:{n}", "a:{n}"],
            "memory, unsampled last"
        );
        v.cycle_sort();
        assert_eq!(names(&v), ["a:{n}", "b:{n}", "c:{n}"], "names A–Z");
        v.reverse();
        assert_eq!(names(&v), ["c:{n}", "b:{n}", "a:{n}"]);
        v.move_by(10);
        assert_eq!(v.selected, 2, "clamped");
        v.move_by(-10);
        assert_eq!(v.selected, 0);
    }
}
