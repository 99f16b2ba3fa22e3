//! Escaping tests: each class of hostile input, the length cap, and a randomised check that
//! no output ever carries a character a terminal would act on.

use super::*;
use rand::{Rng, SeedableRng};

#[test]
fn plain_text_and_unicode_pass_through() {
    assert_eq!(escape("session:42"), "session:42");
    assert_eq!(escape("ключ-🔑-キー"), "ключ-🔑-キー");
    assert_eq!(escape(""), "");
}

#[test]
fn terminal_control_sequences_become_visible() {
    assert_eq!(
        escape("\u{1b}[2J\u{1b}]0;pwned\u{7}"),
        "\\x1b[2J\\x1b]0;pwned\\x07"
    );
    assert_eq!(escape("a\r\nb\tc"), "a\\r\\nb\\tc");
    assert_eq!(escape("\0del\u{7f}"), "\\x00del\\x7f");
    // C1 controls, including the 8-bit CSI that some terminals honour.
    assert_eq!(escape("\u{9b}31m\u{85}"), "\\u{9b}31m\\u{85}");
}

#[test]
fn bidi_and_zero_width_characters_become_visible() {
    assert_eq!(escape("user\u{202e}gpj.exe"), "user\\u{202e}gpj.exe");
    assert_eq!(escape("a\u{2066}b\u{2069}"), "a\\u{2066}b\\u{2069}");
    assert_eq!(escape("ad\u{200b}min"), "ad\\u{200b}min");
    assert_eq!(escape("\u{feff}x\u{2028}"), "\\u{feff}x\\u{2028}");
    assert_eq!(escape("tag\u{e0041}"), "tag\\u{e0041}");
}

#[test]
fn invalid_utf8_bytes_are_shown_as_hex() {
    assert_eq!(escape(b"ok\xff\xfe"), "ok\\xff\\xfe");
    // A truncated multi-byte sequence, then valid text again.
    assert_eq!(escape(b"\xe2\x82rest"), "\\xe2\\x82rest");
    assert_eq!(escape(&b"caf\xc3\xa9"[..]), "café");
}

#[test]
fn backslashes_are_doubled_so_escapes_are_unambiguous() {
    assert_eq!(escape("\\x1b"), "\\\\x1b");
    assert_ne!(escape("\\x1b"), escape("\u{1b}"));
}

#[test]
fn cap_cuts_on_whole_escapes_and_says_what_was_left() {
    let name = "k".repeat(65_536);
    let shown = escape_capped(&name, 10);
    assert_eq!(shown, "kkkkkkkkkk…(+65526 bytes)");
    // Never half an escape sequence.
    assert_eq!(escape_capped("ab\u{1b}cd", 5), "ab…(+3 bytes)");
    assert_eq!(escape_capped("ab\u{1b}cd", 6), "ab\\x1b…(+2 bytes)");
    assert_eq!(escape_capped("short", 5), "short");
    assert_eq!(escape_capped(b"\xff\xff", 4), "\\xff…(+1 bytes)");
}

fn assert_terminal_safe(input: &[u8]) {
    let out = escape(input);
    for c in out.chars() {
        assert!(
            !is_unsafe(c),
            "{c:?} survived escaping of {input:?}: {out:?}"
        );
    }
    let capped = escape_capped(input, 7);
    assert!(capped.chars().all(|c| !is_unsafe(c)));
}

#[test]
fn random_input_never_yields_a_control_character() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    // Bias towards the dangerous ranges: raw bytes, C0/C1, bidi and zero-width code points.
    let specials = [
        '\u{1b}', '\u{9b}', '\u{202e}', '\u{200b}', '\u{2069}', '\u{feff}', '\n',
    ];
    for _ in 0..5_000 {
        let len = rng.random_range(0..40);
        let mut input = Vec::with_capacity(len * 4);
        for _ in 0..len {
            match rng.random_range(0..4) {
                0 => input.push(rng.random::<u8>()),
                1 => {
                    let c = specials[rng.random_range(0..specials.len())];
                    input.extend_from_slice(c.to_string().as_bytes());
                }
                2 => {
                    if let Some(c) = char::from_u32(rng.random_range(0..0x3_0000)) {
                        input.extend_from_slice(c.to_string().as_bytes());
                    }
                }
                _ => input.push(rng.random_range(b' '..=b'~')),
            }
        }
        assert_terminal_safe(&input);
    }
}

#[test]
fn every_single_byte_and_low_code_point_is_safe() {
    for b in 0..=255u8 {
        assert_terminal_safe(&[b]);
    }
    for cp in 0..0x3_0000u32 {
        if let Some(c) = char::from_u32(cp) {
            assert_terminal_safe(c.to_string().as_bytes());
        }
    }
}

#[test]
fn lines_keep_their_breaks_and_lose_their_controls() {
    let text = "failed: \x1b]52;c;aGk=\x07\n  fix: check \u{202e}this";
    let out = escape_lines_capped(text, 200);
    assert_eq!(
        out,
        "failed: \\x1b]52;c;aGk=\\x07\n  fix: check \\u{202e}this"
    );
}

#[test]
fn json_for_a_terminal_is_the_same_json_without_raw_controls() {
    let value = serde_json::json!({
        "host": "evil\u{1b}]52;c;aGk=\u{7}\u{9b}31m\u{202e}\u{7f}\u{e0041}",
        "plain": "orders é ✓",
    });
    let raw = serde_json::to_string_pretty(&value).expect("json");
    let safe = json_for_terminal(&raw);
    assert!(safe.chars().all(|c| !is_unsafe(c) || c == '\n'), "{safe}");
    let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
    assert_eq!(back, value);
    assert!(safe.contains("orders é ✓"));
}
