//! AWS's naming rules that ElastiCache checks on the names cachedeck creates (snapshots,
//! restored caches), so a runbook refuses a bad name before any call and the sandbox answers
//! as AWS does.

/// AWS's rules for snapshot names (it lowercases them): 1–255 characters, letters, digits
/// and hyphens, starting with a letter, no two hyphens in a row, no hyphen at the end.
/// Returns the name as AWS stores it.
pub fn check_snapshot_name(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() || lower.len() > 255 {
        return Err("must be 1 to 255 characters".into());
    }
    if !lower.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a letter".into());
    }
    if !lower
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("may contain only letters, digits and hyphens".into());
    }
    if lower.contains("--") || lower.ends_with('-') {
        return Err("must not contain two consecutive hyphens or end with a hyphen".into());
    }
    Ok(lower)
}

/// AWS's rules for replication group and serverless cache ids: 1–40 characters, letters,
/// digits and hyphens, a letter first, no two hyphens in a row, no hyphen at the end.
pub fn check_cache_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 40 {
        return Err("must be 1 to 40 characters".into());
    }
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("must start with a letter".into());
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("may contain only letters, digits and hyphens".into());
    }
    if id.contains("--") || id.ends_with('-') {
        return Err("must not contain two consecutive hyphens or end with a hyphen".into());
    }
    Ok(())
}

/// AWS's AUTH token rules (the stricter of the two it documents): 16–128 characters, letters,
/// digits and only the symbols `!&#$^<>-`. The error names the rule, never the token.
pub fn check_auth_token(token: &str) -> Result<(), String> {
    let len = token.chars().count();
    if !(16..=128).contains(&len) {
        return Err(format!(
            "the AUTH token must be 16 to 128 characters long (it has {len})"
        ));
    }
    if !token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!&#$^<>-".contains(c))
    {
        return Err("the AUTH token may hold only letters, digits and the symbols !&#$^<>-".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_auth_token;

    #[test]
    fn auth_tokens_follow_the_stricter_rule_and_errors_never_quote_them() {
        assert!(check_auth_token("Abcdefgh12345678").is_ok());
        assert!(check_auth_token("a-b!c&d#e$f^g<h>i").is_ok());
        let short = check_auth_token("short").unwrap_err();
        assert!(
            short.contains("16 to 128") && !short.contains("short"),
            "{short}"
        );
        let bad = check_auth_token("sixteen-chars-with@sign").unwrap_err();
        assert!(bad.contains("!&#$^<>-") && !bad.contains("@sign"), "{bad}");
        assert!(check_auth_token(&"x".repeat(129)).is_err());
    }
}
