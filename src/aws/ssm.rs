//! SSM Parameter Store calls. SecureString values come back wrapped in `SecretString` and
//! never reach an error, a log line or `Debug` output.

use super::AwsControlPlane;
use super::errors::service_code;
use crate::controlplane::{
    ControlPlaneError, LabelOutcome, Parameter, ParameterSelector, ParameterType, ParameterValue,
    ParameterVersion, PutParameter, with_timeout,
};
use aws_sdk_ssm::types::ParameterType as SsmType;
use secrecy::SecretString;
use time::OffsetDateTime;

impl AwsControlPlane {
    /// GetParameter with decryption; `Ok(None)` when it does not exist.
    pub(super) async fn ssm_get(&self, name: &str) -> Result<Option<Parameter>, ControlPlaneError> {
        self.ssm_get_as(name, true).await
    }

    /// GetParameter; without `decrypt` a SecureString's value is its ciphertext (no KMS
    /// call), which is enough to read its type and version.
    pub(super) async fn ssm_get_as(
        &self,
        name: &str,
        decrypt: bool,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        const OP: &str = "GetParameter";
        with_timeout(OP, self.timeout(), async {
            match self
                .ssm
                .get_parameter()
                .name(name)
                .with_decryption(decrypt)
                .send()
                .await
            {
                Ok(out) => Ok(out.parameter.map(parameter)),
                Err(e) if service_code(&e) == Some("ParameterNotFound") => Ok(None),
                Err(e) => Err(self.fail(OP, &e)),
            }
        })
        .await
    }

    /// GetParameter with a `name:version` / `name:label` selector, decrypted; `Ok(None)`
    /// when the parameter, version or label does not exist.
    pub(super) async fn ssm_get_at(
        &self,
        name: &str,
        at: &ParameterSelector,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        const OP: &str = "GetParameter";
        let selected = format!("{name}:{}", at.suffix());
        with_timeout(OP, self.timeout(), async {
            match self
                .ssm
                .get_parameter()
                .name(&selected)
                .with_decryption(true)
                .send()
                .await
            {
                Ok(out) => Ok(out.parameter.map(|p| Parameter {
                    // AWS answers the bare name (and the selector apart).
                    name: name.to_string(),
                    ..parameter(p)
                })),
                Err(e)
                    if matches!(
                        service_code(&e),
                        Some("ParameterNotFound" | "ParameterVersionNotFound")
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(self.fail(OP, &e)),
            }
        })
        .await
    }

    /// GetParametersByPath, recursive, decrypted, all pages.
    pub(super) async fn ssm_get_by_path(
        &self,
        path: &str,
    ) -> Result<Vec<Parameter>, ControlPlaneError> {
        const OP: &str = "GetParametersByPath";
        with_timeout(OP, self.timeout(), async {
            let pages: Vec<_> = self
                .ssm
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .with_decryption(true)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.fail(OP, &e))?;
            Ok(pages
                .into_iter()
                .flat_map(|page| page.parameters.unwrap_or_default())
                .map(parameter)
                .collect())
        })
        .await
    }

    /// PutParameter; with `overwrite = false` an existing name is `AlreadyExists`.
    pub(super) async fn ssm_put(&self, put: PutParameter) -> Result<i64, ControlPlaneError> {
        const OP: &str = "PutParameter";
        let kind = match put.kind {
            ParameterType::String => SsmType::String,
            ParameterType::SecureString => SsmType::SecureString,
            ParameterType::StringList => SsmType::StringList,
        };
        with_timeout(OP, self.timeout(), async {
            let mut request = self
                .ssm
                .put_parameter()
                .name(&put.name)
                .value(put.value.expose())
                .r#type(kind)
                .overwrite(put.overwrite);
            if let Some(description) = &put.description {
                request = request.description(description);
            }
            match request.send().await {
                Ok(out) => Ok(out.version),
                Err(e) if service_code(&e) == Some("ParameterAlreadyExists") => {
                    Err(ControlPlaneError::AlreadyExists {
                        what: format!("parameter {}", put.name),
                    })
                }
                Err(e) => Err(self.fail(OP, &e)),
            }
        })
        .await
    }

    /// DeleteParameter; a missing one is `NotFound`.
    pub(super) async fn ssm_delete(&self, name: &str) -> Result<(), ControlPlaneError> {
        const OP: &str = "DeleteParameter";
        with_timeout(OP, self.timeout(), async {
            match self.ssm.delete_parameter().name(name).send().await {
                Ok(_) => Ok(()),
                Err(e) if service_code(&e) == Some("ParameterNotFound") => {
                    Err(ControlPlaneError::NotFound {
                        what: format!("parameter {name}"),
                    })
                }
                Err(e) => Err(self.fail(OP, &e)),
            }
        })
        .await
    }
}

impl AwsControlPlane {
    /// LabelParameterVersion (the newest version when `version` is `None`).
    pub(super) async fn ssm_label(
        &self,
        name: &str,
        version: Option<i64>,
        labels: &[String],
    ) -> Result<LabelOutcome, ControlPlaneError> {
        const OP: &str = "LabelParameterVersion";
        with_timeout(OP, self.timeout(), async {
            let mut request = self
                .ssm
                .label_parameter_version()
                .name(name)
                .set_labels(Some(labels.to_vec()));
            if let Some(v) = version {
                request = request.parameter_version(v);
            }
            match request.send().await {
                Ok(out) => Ok(LabelOutcome {
                    version: out.parameter_version,
                    invalid_labels: out.invalid_labels.unwrap_or_default(),
                }),
                Err(e) => Err(match service_code(&e) {
                    Some("ParameterNotFound") => ControlPlaneError::NotFound {
                        what: format!("parameter {name}"),
                    },
                    Some("ParameterVersionNotFound") => ControlPlaneError::NotFound {
                        what: format!(
                            "version {} of parameter {name}",
                            version.map(|v| v.to_string()).unwrap_or_default()
                        ),
                    },
                    Some("ParameterVersionLabelLimitExceeded") => {
                        ControlPlaneError::QuotaExceeded {
                            operation: OP.into(),
                            detail: format!(
                                "ParameterVersionLabelLimitExceeded: a version of {name} can have at most 10 labels; move one or more to another version"
                            ),
                        }
                    }
                    _ => self.fail(OP, &e),
                }),
            }
        })
        .await
    }

    /// GetParameterHistory, all pages, without decryption (only versions and labels are
    /// kept).
    pub(super) async fn ssm_history(
        &self,
        name: &str,
    ) -> Result<Vec<ParameterVersion>, ControlPlaneError> {
        const OP: &str = "GetParameterHistory";
        with_timeout(OP, self.timeout(), async {
            let pages: Result<Vec<_>, _> = self
                .ssm
                .get_parameter_history()
                .name(name)
                .with_decryption(false)
                .into_paginator()
                .send()
                .try_collect()
                .await;
            let pages = match pages {
                Ok(p) => p,
                Err(e) if service_code(&e) == Some("ParameterNotFound") => {
                    return Err(ControlPlaneError::NotFound {
                        what: format!("parameter {name}"),
                    });
                }
                Err(e) => return Err(self.fail(OP, &e)),
            };
            let mut out: Vec<ParameterVersion> = pages
                .into_iter()
                .flat_map(|page| page.parameters.unwrap_or_default())
                .map(|h| ParameterVersion {
                    version: h.version,
                    labels: h.labels.unwrap_or_default(),
                    last_modified: h
                        .last_modified_date
                        .and_then(|d| OffsetDateTime::from_unix_timestamp(d.secs()).ok()),
                })
                .collect();
            out.sort_by_key(|v| v.version);
            Ok(out)
        })
        .await
    }
}

/// An SSM parameter in domain form; SecureString values are wrapped as secrets.
pub(super) fn parameter(p: aws_sdk_ssm::types::Parameter) -> Parameter {
    let kind = match p.r#type {
        Some(SsmType::SecureString) => ParameterType::SecureString,
        Some(SsmType::StringList) => ParameterType::StringList,
        _ => ParameterType::String,
    };
    let raw = p.value.unwrap_or_default();
    let value = if kind == ParameterType::SecureString {
        ParameterValue::Secret(SecretString::from(raw))
    } else {
        ParameterValue::Plain(raw)
    };
    Parameter {
        name: p.name.unwrap_or_default(),
        kind,
        value,
        version: p.version,
        last_modified: p
            .last_modified_date
            .and_then(|d| OffsetDateTime::from_unix_timestamp(d.secs()).ok()),
    }
}
