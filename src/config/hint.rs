//! The `fix:` line under a TOML error (the config file's, a runbook file's): one reading of
//! serde's messages, with each file's own reference document and special cases.

/// What one kind of file adds to the common hints.
pub struct Hints {
    /// Where the format is documented, e.g. `assets/config.example.toml`.
    pub doc: &'static str,
    /// The hint when nothing more specific matches.
    pub otherwise: &'static str,
    /// `(text the message contains, hint)`, checked before the common cases.
    pub special: &'static [(&'static str, &'static str)],
}

/// The hint for a serde/TOML error `message`.
pub fn hint_for(message: &str, hints: &Hints) -> String {
    let doc = hints.doc;
    if message.starts_with("unknown field") {
        return format!("remove the field or correct its spelling (see {doc})");
    }
    if message.starts_with("unknown variant") {
        return "use one of the values listed above".into();
    }
    if let Some((_, hint)) = hints.special.iter().find(|(m, _)| message.contains(m)) {
        return (*hint).into();
    }
    if message.starts_with("missing field") {
        format!("add the field (see {doc})")
    } else if message.starts_with("invalid type") {
        "give the value the type shown above".into()
    } else if message.contains("duplicate key") {
        "each key may appear once per table; remove the repeat".into()
    } else {
        hints.otherwise.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Hints = Hints {
        doc: "doc.md",
        otherwise: "see doc.md",
        special: &[("expected a duration", "write a duration")],
    };

    #[test]
    fn common_cases_name_the_document_and_special_cases_come_first() {
        assert_eq!(
            hint_for("unknown field `x`, expected one of `a`", &H),
            "remove the field or correct its spelling (see doc.md)"
        );
        assert_eq!(
            hint_for("missing field `y`", &H),
            "add the field (see doc.md)"
        );
        assert_eq!(
            hint_for("invalid type: integer `5`, expected a duration", &H),
            "write a duration"
        );
        assert_eq!(
            hint_for("invalid type: string, expected u64", &H),
            "give the value the type shown above"
        );
        assert_eq!(hint_for("something else", &H), "see doc.md");
    }
}
