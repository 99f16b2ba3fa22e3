//! Resolves a cache's credentials: the ACL user name and the password, from an environment
//! variable, an SSM parameter, or the user:password part of a URL kept in SSM (seed 002).
//! The password never leaves a `SecretString` except to be sent to the server.

use super::error::{ConnectError, Layer};
use crate::controlplane::ControlPlane;
use crate::domain::{Credentials, SecretRef};
use secrecy::{ExposeSecret, SecretString};

/// Who to log in as. `Debug` shows whether a password is set, never the password.
#[derive(Clone, Default)]
pub struct Auth {
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Auth {
    pub fn new(username: Option<String>, password: Option<SecretString>) -> Auth {
        Auth { username, password }
    }

    /// The password for scrubbing error texts.
    pub(crate) fn secret(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.expose_secret())
    }
}

/// Reads the secrets `creds` point at. `plane` answers SSM look-ups; without one, an SSM
/// reference is an error that says so.
pub async fn resolve(
    creds: &Credentials,
    plane: Option<&dyn ControlPlane>,
) -> Result<Auth, ConnectError> {
    let mut auth = Auth {
        username: creds.username.clone(),
        password: None,
    };
    if let Some(name) = &creds.url_parameter {
        let url = read_parameter(name, plane).await?;
        let (user, password) = credentials_from_url(name, url.expose_secret())?;
        auth.username = auth.username.or(user);
        auth.password = password;
    }
    match &creds.password {
        Some(SecretRef::Env(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => auth.password = Some(SecretString::from(v)),
            _ => {
                return Err(ConnectError::new(
                    Layer::Secret,
                    format!("environment variable {var}"),
                    "it is not set or empty",
                    None,
                )
                .with_cause(format!("export {var} before starting cachedeck")));
            }
        },
        Some(SecretRef::Ssm(name)) => auth.password = Some(read_parameter(name, plane).await?),
        None => {}
    }
    Ok(auth)
}

async fn read_parameter(
    name: &str,
    plane: Option<&dyn ControlPlane>,
) -> Result<SecretString, ConnectError> {
    let target = format!("ssm parameter {name}");
    let Some(plane) = plane else {
        return Err(ConnectError::new(
            Layer::Secret,
            target,
            "no control plane is available to read it",
            None,
        ));
    };
    match plane.get_parameter(name).await {
        Ok(Some(p)) => Ok(SecretString::from(p.value.expose().to_string())),
        Ok(None) => Err(
            ConnectError::new(Layer::Secret, target, "it does not exist", None).with_cause(
                "the parameter path in the config is wrong, or it lives in another region/account",
            ),
        ),
        Err(e) => Err(ConnectError::new(
            Layer::Secret,
            target,
            e.to_string(),
            None,
        )),
    }
}

/// The user name and password of a `redis[s]://user:pass@host:port` URL, percent-decoded.
/// The URL itself holds the secret, so no part of it appears in an error.
pub(crate) fn credentials_from_url(
    parameter: &str,
    text: &str,
) -> Result<(Option<String>, Option<SecretString>), ConnectError> {
    let bad = |what: &str| {
        ConnectError::new(
            Layer::Secret,
            format!("ssm parameter {parameter}"),
            what,
            None,
        )
    };
    let url = url::Url::parse(text.trim()).map_err(|_| bad("its value is not a URL"))?;
    if !matches!(url.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
        return Err(bad(
            "its value is not a redis://, rediss:// or valkey:// URL",
        ));
    }
    let decode = |s: &str| {
        percent_decode(s)
            .ok_or_else(|| bad("its user or password is not valid percent-encoded UTF-8"))
    };
    let user = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(decode)
        .transpose()?
        // ElastiCache AUTH tokens are the `default` user's password.
        .filter(|u| u != "default" || url.password().is_none());
    let password = url
        .password()
        .map(decode)
        .transpose()?
        .map(SecretString::from);
    Ok((user, password))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::{
        CacheEvent, ControlPlaneError, EventQuery, Parameter, ParameterType, ParameterValue,
        PutParameter,
    };

    #[test]
    fn url_credentials_are_decoded_and_never_echoed() {
        let (user, pass) = credentials_from_url("/p/url", "rediss://app:p%40ss%21word@h:6379/0")
            .expect("valid url");
        assert_eq!(user.as_deref(), Some("app"));
        assert_eq!(pass.as_ref().map(|p| p.expose_secret()), Some("p@ss!word"));
        let (user, pass) =
            credentials_from_url("/p/url", "rediss://:tok3n@h:6379").expect("token only");
        assert_eq!(user, None);
        assert!(pass.is_some());
        let err = credentials_from_url("/p/url", "http://u:hunter2@h").expect_err("scheme");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = credentials_from_url("/p/url", "not a url hunter2").expect_err("garbage");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn env_password_missing_says_which_variable() {
        let creds = Credentials {
            username: Some("app".into()),
            password: Some(SecretRef::Env("CACHEDECK_TEST_UNSET_VAR_X".into())),
            url_parameter: None,
            ca_file: None,
        };
        let err = resolve(&creds, None).await.expect_err("unset");
        assert_eq!(err.layer, Layer::Secret);
        assert!(err.to_string().contains("CACHEDECK_TEST_UNSET_VAR_X"));
    }

    /// A control plane that only answers parameter reads, from a fixed map.
    struct Params(
        Vec<(&'static str, &'static str)>,
        crate::domain::Environment,
    );

    #[async_trait::async_trait]
    impl ControlPlane for Params {
        fn environment(&self) -> &crate::domain::Environment {
            &self.1
        }
        async fn discover(&self) -> Result<crate::controlplane::Discovery, ControlPlaneError> {
            Ok(Default::default())
        }
        async fn get_parameter(&self, name: &str) -> Result<Option<Parameter>, ControlPlaneError> {
            if name == "/broken" {
                return Err(ControlPlaneError::AccessDenied {
                    operation: "GetParameter".into(),
                    detail: "no ssm:GetParameter".into(),
                });
            }
            Ok(self
                .0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, v)| Parameter {
                    name: n.to_string(),
                    kind: ParameterType::SecureString,
                    value: ParameterValue::Secret(SecretString::from(v.to_string())),
                    version: 1,
                    last_modified: None,
                }))
        }
        async fn get_parameters_by_path(
            &self,
            _: &str,
        ) -> Result<Vec<Parameter>, ControlPlaneError> {
            Ok(vec![])
        }
        async fn put_parameter(&self, _: PutParameter) -> Result<i64, ControlPlaneError> {
            Ok(1)
        }
        async fn delete_parameter(&self, _: &str) -> Result<(), ControlPlaneError> {
            Ok(())
        }
        async fn describe_events(
            &self,
            _: EventQuery,
        ) -> Result<Vec<CacheEvent>, ControlPlaneError> {
            Ok(vec![])
        }
        async fn test_failover(&self, _: &str, _: &str) -> Result<(), ControlPlaneError> {
            Ok(())
        }
    }

    fn plane() -> Params {
        Params(
            vec![
                ("/orders/auth", "tok-ssm-123456789"),
                (
                    "/paperwurks/dev/redis/url",
                    "rediss://celery:u%2Fr%40l-pw@host:6379/0",
                ),
            ],
            crate::domain::Environment {
                name: "dev".into(),
                provider: crate::domain::ProviderKind::Aws,
                protection: crate::domain::Protection::Open,
                profile: None,
                region: None,
                endpoint_url: None,
                source: "test".into(),
                account: None,
            },
        )
    }

    #[tokio::test]
    async fn passwords_come_from_ssm_and_from_a_url_parameter() {
        let plane = plane();
        let creds = Credentials {
            username: None,
            password: Some(SecretRef::Ssm("/orders/auth".into())),
            url_parameter: None,
            ca_file: None,
        };
        let auth = resolve(&creds, Some(&plane)).await.expect("ssm password");
        assert_eq!(auth.secret(), Some("tok-ssm-123456789"));

        let creds = Credentials {
            url_parameter: Some("/paperwurks/dev/redis/url".into()),
            ..Credentials::default()
        };
        let auth = resolve(&creds, Some(&plane)).await.expect("url password");
        assert_eq!(auth.username.as_deref(), Some("celery"));
        assert_eq!(auth.secret(), Some("u/r@l-pw"));

        let missing = Credentials {
            password: Some(SecretRef::Ssm("/nope".into())),
            ..Credentials::default()
        };
        let err = resolve(&missing, Some(&plane)).await.expect_err("missing");
        assert_eq!(err.layer, Layer::Secret);
        assert!(err.to_string().contains("/nope") && err.to_string().contains("does not exist"));
        let broken = Credentials {
            password: Some(SecretRef::Ssm("/broken".into())),
            ..Credentials::default()
        };
        let err = resolve(&broken, Some(&plane)).await.expect_err("denied");
        assert!(err.to_string().contains("access denied"), "{err}");
        let err = resolve(&missing, None).await.expect_err("no plane");
        assert!(err.to_string().contains("no control plane"), "{err}");
    }

    #[test]
    fn auth_debug_hides_the_password() {
        let auth = Auth::new(Some("u".into()), Some(SecretString::from("hunter2")));
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
