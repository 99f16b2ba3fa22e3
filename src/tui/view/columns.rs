//! Table column widths from content and the terminal's width. Every column gets the width
//! of its widest cell (header included) while the table fits; when it does not, a trailing
//! message column (status, health, note) gives first, then the widest shrinkable column
//! (names, endpoints) gives up one column at a time, never below its minimum, so nothing is
//! cut while space is left. A cell wider than its column is cut in
//! the middle, keeping the distinguishing tail: `paperwurks-…-redis-002`.

use ratatui::layout::Constraint;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// How a column may be sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Col {
    /// The narrowest a shrinkable column gets.
    pub min: u16,
    /// Whether the column gives up width when the table does not fit.
    pub shrink: bool,
    /// Whether it gives before every other column (a message, not a name).
    pub first: bool,
}

impl Col {
    /// Always as wide as its content.
    pub const FIXED: Col = Col {
        min: 0,
        shrink: false,
        first: false,
    };

    /// Shrinks (down to `min`) when the table does not fit.
    pub const fn shrink(min: u16) -> Col {
        Col {
            min,
            shrink: true,
            first: false,
        }
    }

    /// A message column: shrinks (down to `min`) before any name is cut.
    pub const fn message(min: u16) -> Col {
        Col {
            min,
            shrink: true,
            first: true,
        }
    }
}

/// Display width of `text` in terminal columns.
pub fn width(text: &str) -> u16 {
    u16::try_from(text.width()).unwrap_or(u16::MAX)
}

/// The widest of `header` and `cells`, and at least `floor`.
pub fn content_width<'a>(
    header: &str,
    cells: impl IntoIterator<Item = &'a str>,
    floor: u16,
) -> u16 {
    cells
        .into_iter()
        .map(width)
        .chain([width(header), floor])
        .max()
        .unwrap_or(floor)
}

/// Widths for columns wanting `want` in `avail` terminal columns, `spacing` between columns.
pub fn fit(want: &[u16], cols: &[Col], avail: u16, spacing: u16) -> Vec<u16> {
    let mut widths = want.to_vec();
    let gaps = u32::from(spacing) * want.len().saturating_sub(1) as u32;
    let mut total: u32 = widths.iter().map(|&w| u32::from(w)).sum::<u32>() + gaps;
    while total > u32::from(avail) {
        let can = |i: usize, w: u16| cols.get(i).is_some_and(|c| c.shrink && w > c.min);
        let first = (0..widths.len()).find(|&i| can(i, widths[i]) && cols[i].first);
        let widest = first.or_else(|| {
            widths
                .iter()
                .enumerate()
                .filter(|(i, w)| can(*i, **w))
                .max_by_key(|(i, w)| (**w, std::cmp::Reverse(*i)))
                .map(|(i, _)| i)
        });
        let Some(i) = widest else {
            break;
        };
        widths[i] -= 1;
        total -= 1;
    }
    widths
}

/// Ratatui constraints for `widths`: each column its width, the last one the rest of the row.
pub fn constraints(widths: &[u16]) -> Vec<Constraint> {
    let last = widths.len().saturating_sub(1);
    widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            if i == last {
                Constraint::Fill(1)
            } else {
                Constraint::Length(w)
            }
        })
        .collect()
}

/// `text` in at most `max` columns: whole when it fits, else its head, `…` and its tail
/// (the tail gets the larger half: it tells `…-cache-001` from `…-cache-002`).
pub fn cut_middle(text: &str, max: u16) -> String {
    let max = usize::from(max);
    if text.width() <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let room = max - 1;
    let head_room = room / 2;
    let tail_room = room - head_room;
    let mut head = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > head_room {
            break;
        }
        used += w;
        head.push(c);
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used = 0;
    for c in text.chars().rev() {
        let w = c.width().unwrap_or(0);
        if used + w > tail_room {
            break;
        }
        used += w;
        tail.push(c);
    }
    tail.reverse();
    format!("{head}…{}", tail.into_iter().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_fits_whole_while_there_is_room() {
        let cols = [Col::shrink(8), Col::FIXED, Col::shrink(8)];
        assert_eq!(fit(&[30, 10, 20], &cols, 200, 1), vec![30, 10, 20]);
        // 62 wanted in 52: the widest shrinkable column gives first, then both evenly.
        assert_eq!(fit(&[30, 10, 20], &cols, 52, 1), vec![20, 10, 20]);
        assert_eq!(fit(&[30, 10, 20], &cols, 42, 1), vec![15, 10, 15]);
        // Never below the minimum; fixed columns never shrink.
        assert_eq!(fit(&[30, 10, 20], &cols, 10, 1), vec![8, 10, 8]);
        // A message gives before names do.
        let cols = [Col::shrink(8), Col::message(6)];
        assert_eq!(fit(&[20, 40], &cols, 41, 1), vec![20, 20]);
        assert_eq!(fit(&[20, 40], &cols, 20, 1), vec![13, 6]);
    }

    #[test]
    fn long_names_are_cut_in_the_middle_keeping_the_tail() {
        assert_eq!(cut_middle("env0-cache-049", 14), "env0-cache-049");
        assert_eq!(
            cut_middle("paperwurks-prod-redis-002", 20),
            "paperwurk…-redis-002"
        );
        assert_eq!(cut_middle("env0-cache-049", 9), "env0…-049");
        assert_eq!(cut_middle("env0-cache-049", 10), "env0…e-049");
        assert_eq!(cut_middle("abc", 1), "…");
        let wide = cut_middle("日本語のキャッシュ名前-001", 12);
        assert!(width(&wide) <= 12 && wide.ends_with("-001"), "{wide}");
    }
}
