//! Plain aligned tables for terminals and pipes alike: no borders, no colour, one row a line.
//! Every cell is escaped ([`crate::escape`]): cells hold names and values from AWS, SSM,
//! servers and journals, and a table is printed straight to a terminal.

use crate::escape::escape_capped;
use comfy_table::{ContentArrangement, presets};

/// Longest cell, in characters after escaping.
const MAX_CELL: usize = 300;

/// A table with a header row, printed like `kubectl get`.
pub struct Table {
    inner: comfy_table::Table,
}

impl Table {
    pub fn new<I, S>(header: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<comfy_table::Cell>,
    {
        let mut inner = comfy_table::Table::new();
        inner
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(header);
        Table { inner }
    }

    /// Adds a row of raw text; each cell is escaped.
    pub fn row<I, S>(&mut self, cells: I) -> &mut Table
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.inner.add_row(
            cells
                .into_iter()
                .map(|c| escape_capped(c, MAX_CELL))
                .collect::<Vec<_>>(),
        );
        self
    }

    /// Adds a row whose cells went through [`crate::escape`] already (escaping twice would
    /// double every backslash).
    pub fn row_escaped<I>(&mut self, cells: I) -> &mut Table
    where
        I: IntoIterator<Item = String>,
    {
        self.inner.add_row(cells);
        self
    }

    /// The rendered table, each line without the preset's leading space.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in self.inner.lines() {
            out.push_str(line.strip_prefix(' ').unwrap_or(&line).trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_without_borders() {
        let mut t = Table::new(["NAME", "KIND"]);
        t.row(["orders", "replication-group"])
            .row(["s", "serverless"]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME"), "{text}");
        let kind_col = lines[0].find("KIND").expect("header");
        assert_eq!(lines[1].find("replication-group"), Some(kind_col), "{text}");
        assert_eq!(lines[2].find("serverless"), Some(kind_col), "{text}");
    }

    #[test]
    fn cells_are_escaped() {
        let mut t = Table::new(["NAME", "ENDPOINT"]);
        t.row(["orders", "evil\x1b]52;c;aGk=\x07.example:6379"]);
        let text = t.render();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        assert!(
            text.contains("evil\\x1b]52;c;aGk=\\x07.example:6379"),
            "{text}"
        );
    }
}
