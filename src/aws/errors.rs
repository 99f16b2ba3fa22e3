//! Turns every aws-sdk failure into one [`ControlPlaneError`] line a person can act on.
//!
//! Only the error *output* side is ever formatted here: SDK inputs print secrets in `Debug`
//! (auth tokens, SecureString values), so no function in this module takes one.

use crate::controlplane::ControlPlaneError;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::error::Error as StdError;
use std::time::Duration;

/// What an error line needs to know about where the call went.
#[derive(Debug, Clone)]
pub struct ErrorContext {
    /// The AWS profile in use, for the `aws sso login --profile X` hint.
    pub profile: Option<String>,
    /// Where calls go, in words: the endpoint override or "AWS (eu-west-1)".
    pub endpoint: String,
    /// The deadline of one call, reported by timeouts.
    pub call_timeout: Duration,
}

/// Longest service message kept in an error line; AWS messages are sometimes paragraphs.
const MAX_DETAIL: usize = 240;

/// Classifies one SDK failure of `operation`.
pub fn classify<E>(
    operation: &str,
    ctx: &ErrorContext,
    err: &SdkError<E, HttpResponse>,
) -> ControlPlaneError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::TimeoutError(_) => ControlPlaneError::Timeout {
            operation: operation.to_string(),
            after: ctx.call_timeout,
        },
        SdkError::DispatchFailure(failure) => {
            if let Some(creds) = find_credentials_error(err) {
                return credentials(ctx, creds);
            }
            let text = chain_text(err);
            if mentions_missing_region(&text) {
                return no_region(operation);
            }
            if failure.is_timeout() {
                return ControlPlaneError::Timeout {
                    operation: operation.to_string(),
                    after: ctx.call_timeout,
                };
            }
            ControlPlaneError::Unreachable {
                endpoint: ctx.endpoint.clone(),
                detail: text,
            }
        }
        SdkError::ConstructionFailure(_) => {
            if let Some(creds) = find_credentials_error(err) {
                return credentials(ctx, creds);
            }
            let text = chain_text(err);
            if mentions_missing_region(&text) {
                return no_region(operation);
            }
            ControlPlaneError::Service {
                operation: operation.to_string(),
                detail: format!("the request could not be built ({text})"),
            }
        }
        SdkError::ResponseError(response) => ControlPlaneError::Service {
            operation: operation.to_string(),
            detail: format!(
                "unreadable response (HTTP {}): {}",
                response.raw().status().as_u16(),
                chain_text(err)
            ),
        },
        SdkError::ServiceError(service) => {
            let e = service.err();
            classify_code(
                operation,
                ctx,
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or(""),
                service.raw().status().as_u16(),
            )
        }
        _ => ControlPlaneError::Service {
            operation: operation.to_string(),
            detail: chain_text(err),
        },
    }
}

fn mentions_missing_region(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("missing region") || lower.contains("no region")
}

fn no_region(operation: &str) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: operation.to_string(),
        detail: "no AWS region is set; add `region = \"...\"` to the environment or its profile, or set AWS_REGION".to_string(),
    }
}

/// Classifies a service error by its AWS error code.
pub fn classify_code(
    operation: &str,
    ctx: &ErrorContext,
    code: &str,
    message: &str,
    status: u16,
) -> ControlPlaneError {
    let message = one_line(message);
    // The code is text from the response too: kept on one line like the message.
    let shown_code = one_line(code);
    match code {
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" | "TokenRefreshRequired" => {
            ControlPlaneError::Credentials {
                detail: "the session token has expired".into(),
                hint: relogin_hint(ctx, true),
            }
        }
        "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "AuthFailure"
        | "MissingAuthenticationToken" => ControlPlaneError::Credentials {
            detail: format!("the access key or session token was rejected ({code})"),
            hint: relogin_hint(ctx, false),
        },
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnauthorizedException"
        | "AuthorizationError" => ControlPlaneError::AccessDenied {
            operation: operation.to_string(),
            detail: if message.is_empty() {
                shown_code
            } else {
                message
            },
        },
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "TooManyRequestsException"
        | "SlowDown" => ControlPlaneError::Throttled {
            operation: operation.to_string(),
        },
        _ if status == 429 => ControlPlaneError::Throttled {
            operation: operation.to_string(),
        },
        _ => ControlPlaneError::Service {
            operation: operation.to_string(),
            detail: if message.is_empty() {
                format!("{shown_code} (HTTP {status})")
            } else {
                format!("{shown_code}: {message}")
            },
        },
    }
}

/// The code of a service error, for operation-specific mapping (e.g. ParameterNotFound).
pub fn service_code<E>(err: &SdkError<E, HttpResponse>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

fn credentials(ctx: &ErrorContext, creds: &CredentialsError) -> ControlPlaneError {
    // Match on the whole chain: the telling part is often past the length bound.
    let full = chain_of(creds);
    let text = one_line(&full);
    let lower = full.to_lowercase();
    let sso = lower.contains("sso");
    let expired = lower.contains("expired");
    let detail = match creds {
        _ if missing_profile(ctx, &full) => {
            let profile = ctx.profile.as_deref().unwrap_or_default();
            return ControlPlaneError::Credentials {
                detail: format!("profile `{profile}` is not defined in the AWS config files"),
                hint: format!(
                    "add it (e.g. `aws configure sso --profile {profile}`) or fix `profile` in the environment"
                ),
            };
        }
        CredentialsError::CredentialsNotLoaded(_) => {
            "no credentials found in the environment, profile or instance role".to_string()
        }
        CredentialsError::ProviderTimedOut(_) => "the credential provider timed out".to_string(),
        _ if sso && expired => "the SSO session has expired".to_string(),
        _ => text,
    };
    let hint = if sso {
        sso_hint(ctx)
    } else {
        relogin_hint(ctx, expired)
    };
    ControlPlaneError::Credentials { detail, hint }
}

/// Whether the chain failed because the named profile does not exist at all.
fn missing_profile(ctx: &ErrorContext, text: &str) -> bool {
    ctx.profile.as_ref().is_some_and(|p| {
        text.contains(&format!("profile `{p}` was not defined"))
            || text.contains(&format!("profile `{p}` not found"))
    })
}

fn sso_hint(ctx: &ErrorContext) -> String {
    match &ctx.profile {
        Some(profile) => format!("run `aws sso login --profile {profile}`"),
        None => "run `aws sso login`".to_string(),
    }
}

fn relogin_hint(ctx: &ErrorContext, expired: bool) -> String {
    match (&ctx.profile, expired) {
        (Some(profile), true) => format!(
            "run `aws sso login --profile {profile}` (or refresh the profile's credentials) and retry"
        ),
        (Some(profile), false) => {
            format!("check the credentials of profile `{profile}` in ~/.aws, or pick another profile")
        }
        (None, true) => {
            "refresh the session (e.g. `aws sso login`) or set AWS_PROFILE, then retry".to_string()
        }
        (None, false) => {
            "set AWS_PROFILE or `profile = \"...\"` for the environment, or log in with `aws sso login`"
                .to_string()
        }
    }
}

fn find_credentials_error<E>(err: &SdkError<E, HttpResponse>) -> Option<&CredentialsError>
where
    E: StdError + 'static,
{
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(creds) = e.downcast_ref::<CredentialsError>() {
            return Some(creds);
        }
        current = e.source();
    }
    None
}

/// The causes of an error joined with ": ", skipping the SDK's generic outer texts.
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    one_line(&chain_of(err))
}

fn chain_of(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        let generic = matches!(
            text.as_str(),
            "dispatch failure"
                | "io error"
                | "other"
                | "failed to construct request"
                | "response error"
        );
        if !generic && !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// Collapses whitespace and bounds the length, so a message is one readable line.
pub fn one_line(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > MAX_DETAIL {
        let cut: String = collapsed.chars().take(MAX_DETAIL).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ErrorContext {
        ErrorContext {
            profile: Some("acme-prod".into()),
            endpoint: "AWS (eu-west-1)".into(),
            call_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn codes_map_to_their_variants() {
        let c = ctx();
        assert!(matches!(
            classify_code("DescribeReplicationGroups", &c, "ExpiredToken", "x", 400),
            ControlPlaneError::Credentials { .. }
        ));
        assert!(matches!(
            classify_code("DescribeReplicationGroups", &c, "AccessDenied", "no", 403),
            ControlPlaneError::AccessDenied { .. }
        ));
        assert!(matches!(
            classify_code("DescribeReplicationGroups", &c, "Throttling", "", 400),
            ControlPlaneError::Throttled { .. }
        ));
        assert!(matches!(
            classify_code("DescribeReplicationGroups", &c, "Weird", "", 429),
            ControlPlaneError::Throttled { .. }
        ));
        let other = classify_code("GetParameter", &c, "InternalError", "boom\n  again", 500);
        assert_eq!(
            other.to_string(),
            "GetParameter failed: InternalError: boom again"
        );
    }

    #[test]
    fn expired_token_names_the_profile_to_log_in() {
        let err = classify_code("ListServices", &ctx(), "ExpiredTokenException", "", 400);
        assert!(
            err.to_string()
                .contains("aws sso login --profile acme-prod"),
            "{err}"
        );
    }

    #[test]
    fn long_messages_are_bounded() {
        let long = "word ".repeat(200);
        assert!(one_line(&long).chars().count() <= MAX_DETAIL + 1);
    }
}
