//! Key-name patterns: a key name becomes a pattern by collapsing its variable parts (numbers,
//! UUIDs, hex ids, dates, IPs, e-mail addresses, long random tokens, binary junk) into
//! placeholders, so `cache:product:123` and `cache:product:456` both count under
//! `cache:product:{n}`. User globs take precedence over inference.
//!
//! Patterns are built from bytes, never assumed UTF-8, and are short by construction (at
//! most [`MAX_SEGMENTS`] segments, long unclassified parts become `{long}`), so a hostile
//! 64 KB key name cannot make a 64 KB pattern.

/// Segments kept before the rest of the name becomes `*`.
pub const MAX_SEGMENTS: usize = 12;
/// An unclassified part longer than this becomes `{long}`.
const MAX_PART: usize = 48;
/// A word mixing letters and digits up to this long keeps its text (`v2`, `shard12`).
const SHORT_WORD: usize = 8;

/// Separators between segments: each is kept as is in the pattern.
fn is_segment_sep(b: u8) -> bool {
    matches!(
        b,
        b':' | b'/' | b'|' | b'#' | b'=' | b',' | b' ' | b'{' | b'}'
    )
}

/// Separators inside a segment (`celery-task-meta-…`, `a_b.c`).
fn is_part_sep(b: u8) -> bool {
    matches!(b, b'-' | b'_' | b'.' | b'@' | b'+')
}

/// The inferred pattern of `key`.
pub fn infer(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len().min(96));
    let mut start = 0;
    let mut segments = 0;
    for (i, &b) in key.iter().enumerate() {
        if is_segment_sep(b) {
            segment(&key[start..i], &mut out);
            out.push(b as char);
            segments += 1;
            start = i + 1;
            if segments >= MAX_SEGMENTS {
                out.push('*');
                return out;
            }
        }
    }
    segment(&key[start..], &mut out);
    out
}

/// Appends the pattern of one segment (between segment separators).
fn segment(seg: &[u8], out: &mut String) {
    if seg.is_empty() {
        return;
    }
    if seg.iter().any(|&b| !(0x21..0x7f).contains(&b)) {
        // Control characters, ESC, spaces, non-ASCII or invalid UTF-8: one placeholder, so
        // untrusted bytes never reach the pattern (examples show them, escaped).
        out.push_str("{bin}");
        return;
    }
    if let Some(p) = whole(seg) {
        out.push_str(p);
        return;
    }
    let mut i = 0;
    let mut part_start = 0;
    while i <= seg.len() {
        // A UUID contains `-`, so look for one before splitting on part separators.
        if i == part_start && seg.len() - i >= 36 && is_uuid(&seg[i..i + 36]) {
            out.push_str("{uuid}");
            i += 36;
            part_start = i;
            continue;
        }
        if i == part_start && seg.len() - i >= 10 && is_date(&seg[i..i + 10]) {
            out.push_str("{date}");
            i += 10;
            part_start = i;
            continue;
        }
        if i == seg.len() || is_part_sep(seg[i]) {
            part(&seg[part_start..i], out);
            if i < seg.len() {
                out.push(seg[i] as char);
            }
            i += 1;
            part_start = i;
            continue;
        }
        i += 1;
    }
}

/// Whole-segment shapes that contain part separators themselves.
fn whole(seg: &[u8]) -> Option<&'static str> {
    if is_ipv4(seg) {
        return Some("{ip}");
    }
    if seg.contains(&b'@') && seg.contains(&b'.') && seg.len() > 4 {
        return Some("{email}");
    }
    None
}

/// Appends the pattern of one part (between part separators).
fn part(p: &[u8], out: &mut String) {
    if p.is_empty() {
        return;
    }
    let digits = p.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = p.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if digits == p.len() {
        // 10 or 13 digits starting like an epoch is a timestamp; anything else a number.
        let ts = (p.len() == 10 || p.len() == 13) && (p[0] == b'1' || p[0] == b'2');
        out.push_str(if ts { "{ts}" } else { "{n}" });
        return;
    }
    // Hex ids: long ones with any digit, and short ones (`worker-3f8c`, Sidekiq process
    // identities) when digits and hex letters mix — otherwise `3f8c` and `a1b2` would become
    // `{n}f{n}c` and `a{n}b{n}`, one pattern per id instead of one for all.
    let hex = p.iter().all(u8::is_ascii_hexdigit);
    if hex && digits > 0 && (p.len() >= 8 || (p.len() >= 4 && letters > 0)) {
        out.push_str("{hex}");
        return;
    }
    if p.len() >= 16 && digits > 0 && letters > 0 {
        out.push_str("{token}");
        return;
    }
    if p.len() >= 20 && is_mixed_case(p) {
        out.push_str("{token}");
        return;
    }
    if p.len() > MAX_PART {
        out.push_str("{long}");
        return;
    }
    // A short word with numbers in it (`v2`, `zq7`, `shard3`) is a namespace until the
    // audit sees it vary widely (`Aggregate` folds it to `v{n}` then): `v1:user:{n}` and
    // `v2:user:{n}` are two rows, so the old version's keys without a TTL stay visible.
    if p.len() <= SHORT_WORD {
        out.extend(p.iter().map(|&b| b as char));
        return;
    }
    // A longer word with numbers in it: the digit runs collapse.
    push_collapsed(p, out);
}

/// Appends `p` with each run of digits as `{n}`.
fn push_collapsed(p: &[u8], out: &mut String) {
    let mut in_digits = false;
    for &b in p {
        if b.is_ascii_digit() {
            if !in_digits {
                out.push_str("{n}");
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(b as char);
        }
    }
}

/// The byte ranges of the literal short words of `pattern` that mix letters and digits
/// (what [`infer`] keeps as written): the words [`collapse_word`] can turn into ids.
pub fn mixed_words(pattern: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = pattern.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..=bytes.len() {
        let boundary = i == bytes.len() || is_segment_sep(bytes[i]) || is_part_sep(bytes[i]);
        if !boundary {
            continue;
        }
        let w = &bytes[start..i];
        if (2..=SHORT_WORD).contains(&w.len())
            && w.iter().all(u8::is_ascii_alphanumeric)
            && w.iter().any(u8::is_ascii_digit)
            && w.iter().any(u8::is_ascii_alphabetic)
        {
            out.push(start..i);
        }
        start = i + 1;
    }
    out
}

/// `pattern` with its `index`-th mixed word's digit runs as `{n}` (`v2:x` → `v{n}:x`).
pub fn collapse_word(pattern: &str, index: usize) -> Option<String> {
    let range = mixed_words(pattern).into_iter().nth(index)?;
    let mut out = String::with_capacity(pattern.len() + 4);
    out.push_str(&pattern[..range.start]);
    push_collapsed(&pattern.as_bytes()[range.clone()], &mut out);
    out.push_str(&pattern[range.end..]);
    Some(out)
}

/// Every form of `pattern` with any subset of its mixed words collapsed (itself first), at
/// most 2^6: how a remediation recognises a key the audit filed under a folded pattern.
pub fn word_variants(pattern: &str) -> Vec<String> {
    let words = mixed_words(pattern);
    let n = words.len().min(6);
    (0u32..1 << n)
        .map(|mask| {
            let mut out = String::with_capacity(pattern.len() + 4 * n);
            let mut at = 0;
            for (i, r) in words.iter().enumerate().take(n) {
                if mask & (1 << i) != 0 {
                    out.push_str(&pattern[at..r.start]);
                    push_collapsed(&pattern.as_bytes()[r.clone()], &mut out);
                    at = r.end;
                }
            }
            out.push_str(&pattern[at..]);
            out
        })
        .collect()
}

fn is_mixed_case(p: &[u8]) -> bool {
    p.iter().any(u8::is_ascii_uppercase) && p.iter().any(u8::is_ascii_lowercase)
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// `YYYY-MM-DD` (also with `_` or `.` between).
fn is_date(s: &[u8]) -> bool {
    s.len() == 10
        && s.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => matches!(b, b'-' | b'_' | b'.'),
            _ => b.is_ascii_digit(),
        })
        && (s[0] == b'1' || s[0] == b'2')
}

fn is_ipv4(s: &[u8]) -> bool {
    let parts: Vec<&[u8]> = s.split(|&b| b == b'.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
}

/// A Valkey-style glob (`*`, `?`, `[abc]`, `[a-z]`, `[^a]`, `\x`) matched against bytes.
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    // Backtracking point for the last `*`: (pattern index after it, key index).
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, k));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    k += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, key[k])
                        && matched
                    {
                        p = next;
                        k += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == key[k] => {
                    p += 2;
                    k += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if c == key[k] => {
                    p += 1;
                    k += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sk)) => {
                p = sp;
                k = sk + 1;
                star = Some((sp, sk + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Matches `c` against the class starting at `pattern[start] == '['`; returns whether it
/// matched and the index after `]` (None for an unterminated class).
fn class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        let lo = if pattern[i] == b'\\' && i + 1 < pattern.len() {
            i += 1;
            pattern[i]
        } else {
            pattern[i]
        };
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&b| b != b']') {
            let hi = pattern[i + 2];
            let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            matched |= (a..=b).contains(&c);
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    (i < pattern.len()).then_some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_variable_parts() {
        let cases: &[(&[u8], &str)] = &[
            (b"cache:product:123", "cache:product:{n}"),
            (b"session:9f86d081884c7d659a2feaa0c55ad015", "session:{hex}"),
            (
                b"celery-task-meta-4bdf2a6e-5f1c-4c1e-9c34-3b0e1c2d7a10",
                "celery-task-meta-{uuid}",
            ),
            (b"stat:processed:2024-05-01", "stat:processed:{date}"),
            (b"rl:10.0.3.17:login", "rl:{ip}:login"),
            (
                b":1:views.decorators.cache.cache_page.abc",
                ":{n}:views.decorators.cache.cache_page.abc",
            ),
            (b"user:1700000000:shard3", "user:{ts}:shard3"),
            (b"tok:AbCdEfGhIjKlMnOpQrStUv", "tok:{token}"),
            (b"mail:bob@example.com", "mail:{email}"),
            (b"queue:default", "queue:default"),
            (b"worker-3f8c:1234:ab12cd", "worker-{hex}:{n}:{hex}"),
            (b"web-a1b2:7:workers", "web-{hex}:{n}:workers"),
            // Short words mixing letters and digits are namespaces: kept as written.
            (b"cafe:v2:db3", "cafe:v2:db3"),
            (b"v1:user:42", "v1:user:{n}"),
            (b"zq7:job-9", "zq7:job-{n}"),
            // Longer ones collapse; hex ids inside words are still ids.
            (b"sessionstore12:x", "sessionstore{n}:x"),
            (b"worker-ab12:x", "worker-{hex}:x"),
            (b"evil:\x1b[31mred", "evil:{bin}"),
            (b"bad:\xff\xfe", "bad:{bin}"),
        ];
        for (key, want) in cases {
            assert_eq!(infer(key), *want, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn mixed_words_collapse_one_at_a_time() {
        assert_eq!(mixed_words("v1:user:{n}"), vec![0..2]);
        assert_eq!(
            collapse_word("v1:shard3:{n}", 0).as_deref(),
            Some("v{n}:shard3:{n}")
        );
        assert_eq!(
            collapse_word("v1:shard3:{n}", 1).as_deref(),
            Some("v1:shard{n}:{n}")
        );
        assert_eq!(collapse_word("user:{n}", 0), None);
        assert_eq!(
            word_variants("v1:s2"),
            vec!["v1:s2", "v{n}:s2", "v1:s{n}", "v{n}:s{n}"]
        );
    }

    #[test]
    fn huge_names_make_short_patterns() {
        let key = vec![b'a'; 65536];
        assert_eq!(infer(&key), "{long}");
        let many = "a:".repeat(5000);
        assert!(infer(many.as_bytes()).len() < 40);
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"cache:*", b"cache:product:1"));
        assert!(glob_match(b"*:meta", b"a:b:meta"));
        assert!(!glob_match(b"cache:*", b"cachex"));
        assert!(glob_match(b"user:?", b"user:1"));
        assert!(!glob_match(b"user:?", b"user:12"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"k[0-9]", b"k7"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(glob_match(b"*", b""));
    }
}
