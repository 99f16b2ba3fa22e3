//! Which keys a remediation touches: a Valkey glob (`cache:product:*`), or a pattern as the
//! audit prints it (`cache:product:{n}`, with `{id}` standing for any id-like placeholder).
//! A pattern holding a known placeholder is read as an audit pattern; anything else is a glob.
//!
//! Either way the server narrows with `SCAN … MATCH <glob>` (placeholders become `*`), and an
//! audit pattern is then checked key by key against [`pattern::infer`], so a remediation
//! touches exactly the keys the audit filed under that pattern.

use super::pattern;

/// The placeholders [`pattern::infer`] writes.
const PLACEHOLDERS: &[&str] = &[
    "n", "ts", "hex", "token", "long", "uuid", "date", "ip", "email", "bin",
];
/// What `{id}` in a user's pattern stands for.
const ID_LIKE: &[&str] = &["n", "hex", "uuid", "token"];

/// One token of an audit pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// A placeholder name without braces (`n`, `uuid`, `id`).
    Hole(String),
}

/// Splits an audit pattern into literals and placeholders. `{` that does not open a known
/// placeholder (a hash tag's brace) is a literal.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '{'
            && let Some(end) = rest[1..].find('}')
        {
            let name = &rest[1..1 + end];
            if name == "id" || PLACEHOLDERS.contains(&name) {
                out.push(Token::Hole(name.to_string()));
                rest = &rest[end + 2..];
                continue;
            }
        }
        out.push(Token::Literal(c));
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Which keys a remediation matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMatcher {
    /// A Valkey glob, matched by the server.
    Glob(String),
    /// An audit pattern: the server narrows with `glob`, each key's inferred pattern decides.
    Inferred { pattern: String, glob: String },
}

impl KeyMatcher {
    /// Reads `text` as an audit pattern when it holds a known placeholder, else as a glob.
    pub fn parse(text: &str) -> Result<KeyMatcher, String> {
        if text.is_empty() {
            return Err("the pattern is empty; give a glob such as `cache:product:*` or a pattern the audit printed such as `cache:product:{n}`".into());
        }
        if text.chars().any(char::is_control) {
            return Err("the pattern holds control characters".into());
        }
        let toks = tokens(text);
        if !toks.iter().any(|t| matches!(t, Token::Hole(_))) {
            return Ok(KeyMatcher::Glob(text.to_string()));
        }
        let mut glob = String::new();
        for t in &toks {
            match t {
                Token::Hole(_) => {
                    if !glob.ends_with('*') {
                        glob.push('*');
                    }
                }
                // The audit appends `*` after its last kept segment: any rest of the name.
                Token::Literal('*') => glob.push('*'),
                // Other glob metacharacters stand for themselves in a key name: `?` (any one
                // byte) is a superset, and the inferred check below is exact.
                Token::Literal('?' | '[' | ']' | '\\') => glob.push('?'),
                Token::Literal(c) => glob.push(*c),
            }
        }
        Ok(KeyMatcher::Inferred {
            pattern: text.to_string(),
            glob,
        })
    }

    /// The `SCAN … MATCH` argument.
    pub fn server_glob(&self) -> &str {
        match self {
            KeyMatcher::Glob(g) => g,
            KeyMatcher::Inferred { glob, .. } => glob,
        }
    }

    /// Whether a key the server returned for [`server_glob`](Self::server_glob) matches.
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            KeyMatcher::Glob(_) => true,
            // The audit may have folded a short word that varied widely (`v{n}`): any form
            // of the key's pattern with such words collapsed counts.
            KeyMatcher::Inferred { pattern, .. } => pattern::word_variants(&pattern::infer(key))
                .iter()
                .any(|p| inferred_matches(pattern, p)),
        }
    }

    /// One line saying which keys this matches, for the operator.
    pub fn describe(&self) -> String {
        match self {
            KeyMatcher::Glob(g) => format!(
                "glob `{g}`: every key the server's SCAN MATCH accepts (`*` any run of bytes, `?` one byte, `[…]` a class)"
            ),
            KeyMatcher::Inferred { pattern, glob } => format!(
                "audit pattern `{pattern}`: keys the ttl-audit files under this pattern ({{n}} digits, {{hex}} hex ids — all-digit ones too, {{uuid}}, {{ts}} epoch times, {{token}} random tokens, {{id}} any of n/hex/uuid/token); the server narrows with MATCH `{glob}` and each key name is checked"
            ),
        }
    }

    /// `glob` or `audit-pattern`.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyMatcher::Glob(_) => "glob",
            KeyMatcher::Inferred { .. } => "audit-pattern",
        }
    }
}

/// Whether an inferred pattern equals the user's audit pattern, `{id}` matching any id-like
/// placeholder and `{hex}` also an all-digit id (as the audit folds `{n}` into `{hex}`).
fn inferred_matches(user: &str, inferred: &str) -> bool {
    let (u, k) = (tokens(user), tokens(inferred));
    u.len() == k.len()
        && u.iter().zip(&k).all(|(a, b)| match (a, b) {
            (Token::Hole(x), Token::Hole(y)) => {
                x == y
                    || (x == "id" && ID_LIKE.contains(&y.as_str()))
                    // The audit folds hex ids that happen to be all digits into `{hex}`.
                    || (x == "hex" && y == "n")
            }
            (a, b) => a == b,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_globs() {
        let m = KeyMatcher::parse("cache:product:*").expect("glob");
        assert_eq!(m, KeyMatcher::Glob("cache:product:*".into()));
        assert!(m.matches(b"anything the server sent"));
        // A hash tag is not a placeholder.
        assert_eq!(m.kind(), "glob");
        assert!(matches!(
            KeyMatcher::parse("{user1}:cart").expect("glob"),
            KeyMatcher::Glob(_)
        ));
        assert!(KeyMatcher::parse("").is_err());
    }

    #[test]
    fn audit_patterns_match_what_the_audit_files_under_them() {
        let m = KeyMatcher::parse("cache:product:{n}").expect("pattern");
        assert_eq!(m.server_glob(), "cache:product:*");
        assert!(m.matches(b"cache:product:123"));
        assert!(!m.matches(b"cache:product:123:meta"));
        assert!(!m.matches(b"cache:product:abc"));
        // A 10-digit number starting with 1 is a timestamp to the audit, not `{n}`.
        assert!(!m.matches(b"cache:product:1700000000"));

        let id = KeyMatcher::parse("cache:product:{id}").expect("pattern");
        assert!(id.matches(b"cache:product:123"));
        assert!(id.matches(b"cache:product:9f86d081884c7d65"));
        assert!(id.matches(b"cache:product:4bdf2a6e-5f1c-4c1e-9c34-3b0e1c2d7a10"));
        assert!(!id.matches(b"cache:product:latest"));

        let tagged = KeyMatcher::parse("user:{{n}}:cart").expect("pattern");
        assert_eq!(tagged.server_glob(), "user:{*}:cart");
        assert!(tagged.matches(b"user:{42}:cart"));
        assert!(!tagged.matches(b"user:{x}:cart"));

        // `tmp:export:3172` beside `tmp:export:3f8c`: the audit counts both as `{hex}`.
        let hex = KeyMatcher::parse("tmp:export:{hex}").expect("pattern");
        assert!(hex.matches(b"tmp:export:3f8c"));
        assert!(hex.matches(b"tmp:export:3172"));
        assert!(!hex.matches(b"tmp:export:done"));

        // Namespaces stay apart; a folded word matches every value of it.
        let v1 = KeyMatcher::parse("v1:user:{n}").expect("pattern");
        assert!(v1.matches(b"v1:user:7"));
        assert!(!v1.matches(b"v2:user:7"));
        let wide = KeyMatcher::parse("v{n}:user:{n}").expect("pattern");
        assert!(wide.matches(b"v1:user:7") && wide.matches(b"v22:user:7"));
        assert!(!wide.matches(b"v1:session:7"));

        let bin = KeyMatcher::parse("evil:{bin}").expect("pattern");
        assert!(bin.matches(b"evil:\x1b[31mred"));
    }
}
