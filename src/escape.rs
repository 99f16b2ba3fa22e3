//! The one function for showing untrusted text: key names, values, slowlog arguments and
//! server error strings all pass through [`escape`] before they reach a screen, a table or a
//! log line.
//!
//! Anything that could move the cursor, recolour or clear the terminal, reorder text (bidi
//! overrides) or hide characters (zero-width) is replaced by a visible escape such as `\x1b`,
//! `\u{202e}` or `\xff` (for bytes that are not UTF-8). A backslash is doubled so that an
//! escape in the output always means an escaped character, never a literal one.

use std::fmt::Write;

/// Escapes `input` (bytes or text) without a length limit.
pub fn escape(input: impl AsRef<[u8]>) -> String {
    escape_capped(input, usize::MAX)
}

/// Escapes `input`, keeping at most `max_chars` characters of output; a cut adds `…` and
/// how many input bytes were left out (e.g. a 64 KB key name in a table cell).
pub fn escape_capped(input: impl AsRef<[u8]>, max_chars: usize) -> String {
    let bytes = input.as_ref();
    let mut out = String::with_capacity(bytes.len().min(max_chars.saturating_add(16)));
    let mut chars = 0usize;
    let mut piece = String::new();
    let mut shown_bytes = 0usize;
    for (consumed, chunk) in chunks(bytes) {
        piece.clear();
        match chunk {
            Chunk::Char(c) => push_char(&mut piece, c),
            Chunk::Byte(b) => {
                let _ = write!(piece, "\\x{b:02x}");
            }
        }
        let width = piece.chars().count();
        if chars + width > max_chars {
            let left = bytes.len() - shown_bytes;
            let _ = write!(out, "…(+{left} bytes)");
            return out;
        }
        chars += width;
        shown_bytes = consumed;
        out.push_str(&piece);
    }
    out
}

/// Escapes a message meant to span lines (an error with its `fix:` line): each line is
/// escaped on its own with [`escape_capped`] (at most `max_line` characters), the line
/// breaks stay. For every headless text path whose message may quote outside text.
pub fn escape_lines_capped(text: &str, max_line: usize) -> String {
    text.split('\n')
        .map(|line| escape_capped(line, max_line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Makes a JSON document safe for a terminal without changing what it says: serde escapes
/// only C0 controls, so every other character [`is_unsafe`] (DEL, C1 controls such as the
/// one-character CSI U+009B, bidi overrides, zero-width characters) becomes a `\uXXXX` JSON
/// escape. Outside strings JSON holds only ASCII punctuation and whitespace, so this only
/// ever rewrites string contents.
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t') {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes each line of `input` on its own, keeping the line breaks: for messages of several
/// lines that quote untrusted text (e.g. a parse error quoting a file).
pub fn escape_lines(input: &str) -> String {
    input.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// Whether `c` must not reach a terminal as itself.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL and C1 (U+0080–U+009F)
        || matches!(c,
            '\u{00ad}'                    // soft hyphen (invisible)
            | '\u{034f}'                  // combining grapheme joiner
            | '\u{061c}'                  // arabic letter mark (bidi)
            | '\u{115f}' | '\u{1160}'     // hangul fillers (render blank)
            | '\u{180e}'                  // mongolian vowel separator
            | '\u{200b}'..='\u{200f}'     // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'     // line and paragraph separators
            | '\u{202a}'..='\u{202e}'     // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'     // word joiner, invisible operators
            | '\u{2066}'..='\u{206f}'     // bidi isolates, deprecated format chars
            | '\u{3164}'                  // hangul filler
            | '\u{fe00}'..='\u{fe0f}'     // variation selectors
            | '\u{feff}'                  // zero-width no-break space / BOM
            | '\u{ffa0}'                  // halfwidth hangul filler
            | '\u{fff9}'..='\u{fffb}'     // interlinear annotation
            | '\u{e0000}'..='\u{e007f}'   // tag characters
        )
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 && c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

enum Chunk {
    Char(char),
    Byte(u8),
}

/// Decodes `bytes` as UTF-8, yielding each character or each invalid byte, together with
/// how many input bytes have been consumed after it.
fn chunks(bytes: &[u8]) -> impl Iterator<Item = (usize, Chunk)> + '_ {
    let mut consumed = 0usize;
    bytes.utf8_chunks().flat_map(move |chunk| {
        let valid = chunk.valid();
        let start = consumed;
        consumed += valid.len() + chunk.invalid().len();
        let chars = valid
            .char_indices()
            .map(move |(i, c)| (start + i + c.len_utf8(), Chunk::Char(c)));
        let invalid_start = start + valid.len();
        let bad = chunk
            .invalid()
            .iter()
            .enumerate()
            .map(move |(i, b)| (invalid_start + i + 1, Chunk::Byte(*b)));
        chars.chain(bad).collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests;
