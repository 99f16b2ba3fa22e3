//! The control plane of an environment that makes no AWS calls (`provider = "static"`, or
//! the static caches of an `aws` environment whose AWS side is unusable): nothing to
//! discover beyond the config's URLs, no events, no TestFailover. Run locks are kept on
//! this host (a parameter store under the state directory), so they protect a cache from
//! two runs started here, not from another host.

use crate::config::{EnvConfig, Settings};
use crate::controlplane::param_store::ParamStore;
use crate::controlplane::{
    CacheEvent, ControlPlane, ControlPlaneError, Discovery, EventQuery, Parameter, PutParameter,
};
use crate::domain::Environment;
use async_trait::async_trait;

/// A control plane without AWS.
#[derive(Debug, Clone)]
pub struct LocalControlPlane {
    env: Environment,
    params: ParamStore,
}

impl LocalControlPlane {
    /// The local plane of environment `name`; its store lives under the state directory.
    pub fn new(name: &str, cfg: &EnvConfig, _settings: &Settings) -> LocalControlPlane {
        LocalControlPlane::at(&crate::config::state_dir().join("local"), name, cfg)
    }

    /// The same with its store in `dir`.
    pub fn at(dir: &std::path::Path, name: &str, cfg: &EnvConfig) -> LocalControlPlane {
        LocalControlPlane {
            env: cfg.environment(name, "config"),
            params: ParamStore::new(dir),
        }
    }

    fn unsupported(&self, operation: &str) -> ControlPlaneError {
        ControlPlaneError::Unsupported {
            operation: operation.to_string(),
            target: format!("environment `{}`", self.env.name),
            why: "it has no AWS control plane (its caches are known by URL only)".to_string(),
        }
    }
}

#[async_trait]
impl ControlPlane for LocalControlPlane {
    fn environment(&self) -> &Environment {
        &self.env
    }

    async fn discover(&self) -> Result<Discovery, ControlPlaneError> {
        // The estate adds the config's static caches to every discovery.
        Ok(Discovery::default())
    }

    async fn get_parameter(&self, name: &str) -> Result<Option<Parameter>, ControlPlaneError> {
        self.params.get(name)
    }

    async fn get_parameters_by_path(
        &self,
        path: &str,
    ) -> Result<Vec<Parameter>, ControlPlaneError> {
        self.params.by_path(path)
    }

    async fn put_parameter(&self, put: PutParameter) -> Result<i64, ControlPlaneError> {
        self.params.put(&put)
    }

    async fn delete_parameter(&self, name: &str) -> Result<(), ControlPlaneError> {
        self.params.delete(name)
    }

    async fn label_parameter_version(
        &self,
        name: &str,
        version: Option<i64>,
        labels: &[String],
    ) -> Result<crate::controlplane::LabelOutcome, ControlPlaneError> {
        self.params.label(name, version, labels)
    }

    async fn get_parameter_at(
        &self,
        name: &str,
        at: &crate::controlplane::ParameterSelector,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        self.params.get_at(name, at)
    }

    async fn get_parameter_history(
        &self,
        name: &str,
    ) -> Result<Vec<crate::controlplane::ParameterVersion>, ControlPlaneError> {
        self.params.history(name)
    }

    async fn describe_events(&self, _: EventQuery) -> Result<Vec<CacheEvent>, ControlPlaneError> {
        Ok(Vec::new())
    }

    async fn test_failover(&self, _: &str, _: &str) -> Result<(), ControlPlaneError> {
        Err(self.unsupported("TestFailover"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::{ParameterSelector, ParameterType, ParameterValue};

    fn plane(dir: &std::path::Path) -> LocalControlPlane {
        let cfg: EnvConfig =
            toml::from_str("provider = \"static\"\n").expect("a static environment parses");
        LocalControlPlane::at(dir, "lab", &cfg)
    }

    fn put(name: &str, value: &str) -> PutParameter {
        PutParameter {
            name: name.into(),
            kind: ParameterType::String,
            value: ParameterValue::Plain(value.into()),
            overwrite: true,
            description: None,
        }
    }

    /// What cutover and rollback read back on an environment without AWS: an earlier
    /// version by number and by label, from the store under the state directory.
    #[tokio::test]
    async fn reads_an_earlier_version_by_number_and_by_label() {
        let dir = tempfile::tempdir().expect("temp dir");
        let plane = plane(dir.path());
        let name = "/lab/orders/endpoint";
        assert_eq!(
            plane
                .put_parameter(put(name, "old.example:6379"))
                .await
                .unwrap(),
            1
        );
        plane
            .label_parameter_version(name, Some(1), &["cachedeck-before-x".into()])
            .await
            .expect("label version 1");
        assert_eq!(
            plane
                .put_parameter(put(name, "new.example:6379"))
                .await
                .unwrap(),
            2
        );

        let by_label = plane
            .get_parameter_at(name, &ParameterSelector::Label("cachedeck-before-x".into()))
            .await
            .unwrap()
            .expect("the labelled version");
        assert_eq!(
            (by_label.version, by_label.value.expose()),
            (1, "old.example:6379")
        );
        let by_number = plane
            .get_parameter_at(name, &ParameterSelector::Version(2))
            .await
            .unwrap()
            .expect("version 2");
        assert_eq!(by_number.value.expose(), "new.example:6379");
        let unknown = plane
            .get_parameter_at(name, &ParameterSelector::Label("cachedeck-nothing".into()))
            .await
            .unwrap();
        assert!(unknown.is_none(), "an unknown label reads as absent");
    }
}
