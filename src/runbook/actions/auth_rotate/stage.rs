//! `auth-rotate-generate`: a new token from the OS's CSPRNG, written ahead to the staging
//! SecureString before anything touches the cache; the token it replaces is staged beside it.
//! A token already staged by an earlier, unfinished rotation is reused, never replaced: the
//! cache may already accept it, and a second ROTATE with another token would push out the
//! one the applications still use. Both staging parameters' versions carry the label
//! `run-<run id>` of the run that staged (or reused) them.

use super::{
    Mechanism, current_password, fingerprint, has_labels, label_version, pending_name,
    previous_name, put_secret, read_secret, run_label,
};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

pub struct AuthGenerate;

const LETTERS_DIGITS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

const INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "length",
        ValueKind::Int,
        Some("64"),
        "characters in the new token (16–128)",
    ),
    InputSpec::optional(
        "alphabet",
        ValueKind::String,
        Some("\"\""),
        "characters to draw from; empty: letters and digits",
    ),
];
const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "fingerprint",
        kind: ValueKind::String,
        doc: "short SHA-256 fingerprint of the new token",
    },
    OutputSpec {
        name: "previous_fingerprint",
        kind: ValueKind::String,
        doc: "fingerprint of the token it replaces (empty: none)",
    },
    OutputSpec {
        name: "reused",
        kind: ValueKind::Bool,
        doc: "an earlier, unfinished rotation's staged token was reused",
    },
];

/// Checks a token alphabet against AWS's rules for the mechanism.
pub fn check_alphabet(mechanism: Mechanism, alphabet: &str) -> Result<(), String> {
    if alphabet.chars().count() < 10 {
        return Err("the alphabet needs at least 10 distinct characters".into());
    }
    for c in alphabet.chars() {
        let ok = match mechanism {
            Mechanism::Token => c.is_ascii_alphanumeric() || "!&#$^<>-".contains(c),
            Mechanism::Rbac => c.is_ascii_graphic() && !",\"/@".contains(c),
            Mechanism::Acl => c.is_ascii_graphic(),
        };
        if !ok {
            return Err(format!(
                "`{}` is not allowed in a {} password ({})",
                c.escape_default(),
                mechanism.as_str(),
                match mechanism {
                    Mechanism::Token =>
                        "AUTH tokens take letters, digits and only the symbols !&#$^<>-",
                    Mechanism::Rbac => "RBAC passwords take printable ASCII except , \" / @",
                    Mechanism::Acl => "printable ASCII without spaces",
                }
            ));
        }
    }
    Ok(())
}

/// The `length` and `alphabet` inputs, checked.
pub fn token_spec(mechanism: Mechanism, inputs: &Inputs) -> Result<(usize, Vec<u8>), ActionError> {
    let length = inputs.int("length")?;
    if !(16..=128).contains(&length) {
        return Err(ActionError::failed(format!(
            "generate a token of {length} characters: AWS takes 16 to 128"
        )));
    }
    let alphabet = match inputs.opt_str("alphabet")? {
        None | Some("") => LETTERS_DIGITS.to_string(),
        Some(a) => a.to_string(),
    };
    check_alphabet(mechanism, &alphabet)
        .map_err(|e| ActionError::failed(format!("use the alphabet: {e}")))?;
    let mut bytes: Vec<u8> = alphabet.bytes().collect();
    bytes.sort_unstable();
    bytes.dedup();
    Ok((length as usize, bytes))
}

/// `length` characters drawn uniformly from `alphabet` with the OS's CSPRNG (rejection
/// sampling, so no character is more likely than another).
pub fn generate(length: usize, alphabet: &[u8]) -> Result<SecretString, ActionError> {
    use rand::TryRngCore;
    let n = alphabet.len();
    if n == 0 || n > 256 {
        return Err(ActionError::failed("generate a token: empty alphabet"));
    }
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 64];
    while out.len() < length {
        rand::rngs::OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|e| ActionError::failed(format!("read the OS random source: {e}")))?;
        for &b in &buf {
            if (b as usize) < limit {
                out.push(alphabet[b as usize % n] as char);
                if out.len() == length {
                    break;
                }
            }
        }
    }
    buf.fill(0);
    Ok(SecretString::from(out))
}

/// Labels the newest version of a staging parameter with the run's label (unless it has
/// it already).
async fn label_staging(ctx: &ActionContext, name: &str) -> Result<(), ActionError> {
    if let Some(p) = ctx.plane.get_parameter(name).await? {
        let label = run_label(ctx);
        if !has_labels(ctx, name, p.version, std::slice::from_ref(&label)).await? {
            label_version(ctx, name, p.version, &[label]).await;
        }
    }
    Ok(())
}

/// Whether the staged token's version carries this run's label.
async fn staging_labelled(ctx: &ActionContext) -> Result<bool, ActionError> {
    let name = pending_name(&ctx.cache);
    Ok(match ctx.plane.get_parameter(&name).await? {
        Some(p) => has_labels(ctx, &name, p.version, &[run_label(ctx)]).await?,
        None => false,
    })
}

async fn outputs(ctx: &ActionContext, reused: bool) -> Result<Option<Values>, ActionError> {
    let Some(pending) = read_secret(ctx, &pending_name(&ctx.cache)).await? else {
        return Ok(None);
    };
    let previous = read_secret(ctx, &previous_name(&ctx.cache))
        .await?
        .map(|p| {
            if p.expose_secret().is_empty() {
                String::new()
            } else {
                fingerprint(p.expose_secret())
            }
        })
        .unwrap_or_default();
    Ok(Some(
        Values::new()
            .with(
                "fingerprint",
                Value::str(fingerprint(pending.expose_secret())),
            )
            .with("previous_fingerprint", Value::str(previous))
            .with("reused", Value::bool(reused)),
    ))
}

#[async_trait]
impl Action for AuthGenerate {
    fn name(&self) -> &'static str {
        "auth-rotate-generate"
    }
    fn summary(&self) -> &'static str {
        "Generate a new token (OS CSPRNG) and write it ahead to the staging SecureString"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        vec![
            PlannedCall::local(format!(
                "generate a token of {} characters from the OS CSPRNG (reuse {} if it exists)",
                inputs.show("length"),
                pending_name(ctx.cache)
            )),
            PlannedCall::control_plane(
                format!(
                    "PutParameter name={} type=SecureString value=[current secret]",
                    previous_name(ctx.cache)
                ),
                true,
            ),
            PlannedCall::control_plane(
                format!(
                    "PutParameter name={} type=SecureString overwrite=false value=[new token]",
                    pending_name(ctx.cache)
                ),
                true,
            ),
            PlannedCall::control_plane(
                "LabelParameterVersion of both staging parameters: run-<run id>",
                true,
            ),
        ]
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        _inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        Ok(match outputs(ctx, true).await? {
            Some(_) if !staging_labelled(ctx).await? => {
                Observation::Partial("the token is staged but not labelled with this run".into())
            }
            Some(v) => Observation::Done(v),
            None => Observation::NotDone,
        })
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let mechanism = Mechanism::of(&ctx.cache);
        let (length, alphabet) = token_spec(mechanism, inputs)?;
        if let Some(values) = outputs(ctx, true).await? {
            label_staging(ctx, &pending_name(&ctx.cache)).await?;
            ctx.output(format!(
                "reusing the token staged by an earlier rotation ({}: fingerprint {})",
                pending_name(&ctx.cache),
                values
                    .get("fingerprint")
                    .map(Value::display)
                    .unwrap_or_default()
            ));
            return Ok(values);
        }
        // The token being replaced first: with the new one staged and the old one lost, a
        // rollback would have nothing to go back to.
        let current = current_password(ctx)
            .await?
            .unwrap_or_else(|| SecretString::from(String::new()));
        put_secret(
            ctx,
            &previous_name(&ctx.cache),
            &current,
            true,
            &format!("token replaced by cachedeck run {}", ctx.run_id),
        )
        .await?;
        let token = generate(length, &alphabet)?;
        if token.expose_secret() == current.expose_secret() {
            return Err(ActionError::failed(
                "generate a token: it equals the current one",
            ));
        }
        match put_secret(
            ctx,
            &pending_name(&ctx.cache),
            &token,
            false,
            &format!("new token staged by cachedeck run {}", ctx.run_id),
        )
        .await
        {
            Ok(_) => {}
            // Another attempt staged one meanwhile: that one wins.
            Err(ActionError::ControlPlane(
                crate::controlplane::ControlPlaneError::AlreadyExists { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        drop(token);
        label_staging(ctx, &previous_name(&ctx.cache)).await?;
        label_staging(ctx, &pending_name(&ctx.cache)).await?;
        let values = outputs(ctx, false).await?.ok_or_else(|| {
            ActionError::failed("read back the staged token: it is not there after writing it")
        })?;
        ctx.output(format!(
            "new token staged in {} (fingerprint {})",
            pending_name(&ctx.cache),
            values
                .get("fingerprint")
                .map(Value::display)
                .unwrap_or_default()
        ));
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_use_only_the_alphabet_and_the_length() {
        let t = generate(64, LETTERS_DIGITS.as_bytes()).expect("token");
        assert_eq!(t.expose_secret().len(), 64);
        assert!(t.expose_secret().chars().all(|c| c.is_ascii_alphanumeric()));
        let u = generate(64, LETTERS_DIGITS.as_bytes()).expect("token");
        assert_ne!(t.expose_secret(), u.expose_secret());
        let s = generate(200, b"ab").expect("token");
        assert!(s.expose_secret().contains('a') && s.expose_secret().contains('b'));
    }

    #[test]
    fn alphabets_are_checked_against_aws_rules() {
        assert!(check_alphabet(Mechanism::Token, "abcdefghij!&#$^<>-").is_ok());
        assert!(check_alphabet(Mechanism::Token, "abcdefghij@").is_err());
        assert!(check_alphabet(Mechanism::Token, "abcdefghij%").is_err());
        assert!(check_alphabet(Mechanism::Rbac, "abcdefghij%*").is_ok());
        assert!(check_alphabet(Mechanism::Rbac, "abcdefghij,").is_err());
        assert!(check_alphabet(Mechanism::Rbac, "abcdefghij/").is_err());
        assert!(check_alphabet(Mechanism::Token, "abc").is_err());
    }
}
