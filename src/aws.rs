//! The AWS control plane: ElastiCache, ECS and SSM through the aws-sdk, behind
//! [`ControlPlane`]. Every call runs under the environment's deadline and every failure is
//! classified into one [`ControlPlaneError`] line (see [`errors`]).

mod auth;
pub mod cloudmap;
mod consumers;
mod discover;
mod ecs;
mod elasticache;
pub mod errors;
pub mod exec;
pub mod map;
mod memo;
pub mod profiles;
pub mod snapshots;
mod ssm;
pub mod ssm_caches;

use crate::config::{EnvConfig, Settings};
use crate::controlplane;
use crate::controlplane::{
    CacheEvent, ControlPlane, ControlPlaneError, Discovery, EcsServiceState, EventQuery, Parameter,
    PutParameter, RestoreRequest, Snapshot, SnapshotQuery, SnapshotTarget,
};
use crate::domain::{Account, Environment};
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use errors::ErrorContext;
use std::time::Duration;

/// Log levels the SDK and its HTTP stack never go below, whatever `CACHEDECK_LOG` says: at
/// trace they print whole requests and responses, which carry AUTH tokens, SecureString
/// values and session tokens.
pub const SDK_LOG_CLAMPS: [&str; 7] = [
    "aws_smithy_runtime=debug",
    // At trace (older releases: debug) it logs a profile's `credential_process` command line,
    // arguments and all.
    "aws_config=info",
    "aws_smithy_http_client=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
];

/// How long establishing a TCP/TLS connection to an AWS endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// The aws-sdk implementation of [`ControlPlane`] for one environment.
#[derive(Clone)]
pub struct AwsControlPlane {
    env: Environment,
    cfg: EnvConfig,
    settings: Settings,
    elasticache: aws_sdk_elasticache::Client,
    ecs: aws_sdk_ecs::Client,
    ssm: aws_sdk_ssm::Client,
    /// STS for GetCallerIdentity; `None` for planes built from ready-made clients without
    /// one (tests), which then have no account.
    sts: Option<aws_sdk_sts::Client>,
    /// KMS, for data keys of encrypted ECS Exec sessions.
    kms: Option<aws_sdk_kms::Client>,
    /// Cloud Map, for the service-discovery names of ECS services.
    servicediscovery: Option<aws_sdk_servicediscovery::Client>,
    /// What discovery learned that does not change (see [`memo`]).
    memo: std::sync::Arc<memo::Memo>,
    ctx: ErrorContext,
}

impl std::fmt::Debug for AwsControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SDK clients' Debug output is long and unhelpful; the environment says it all.
        f.debug_struct("AwsControlPlane")
            .field("env", &self.env.name)
            .field("endpoint", &self.ctx.endpoint)
            .finish_non_exhaustive()
    }
}

impl AwsControlPlane {
    /// Builds the clients of environment `name` from its profile, region and endpoint
    /// override. An environment with a profile gets that profile's credentials only (static
    /// keys, SSO, assume-role, `credential_process`), never exported `AWS_*` keys, which the
    /// default chain would try first; its region is the environment's, else the profile's.
    /// A profile the AWS config files do not define is [`ControlPlaneError::UnknownProfile`];
    /// anything else unusable (expired SSO, no keys) shows up as an error from the first
    /// call, never as a panic.
    pub async fn connect(
        name: &str,
        cfg: &EnvConfig,
        settings: &Settings,
    ) -> Result<AwsControlPlane, ControlPlaneError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(settings.call_timeout)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard());
        let mut region = cfg.region.clone().map(aws_config::Region::new);
        if let Some(profile) = &cfg.profile {
            profiles::ensure_defined(profile).await?;
            if region.is_none() {
                region = profiles::region_of(profile).await;
            }
            loader = loader
                .profile_name(profile)
                .credentials_provider(profiles::credentials(profile, region.clone()));
        }
        if let Some(region) = region {
            loader = loader.region(region);
        }
        if let Some(url) = &cfg.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        let mut env = cfg.environment(name, "config");
        if env.region.is_none() {
            env.region = shared.region().map(|r| r.to_string());
        }
        let region = shared.region().map(|r| r.to_string());
        let mut plane = AwsControlPlane::from_clients(
            env,
            cfg.clone(),
            settings.clone(),
            aws_sdk_elasticache::Client::new(&shared),
            aws_sdk_ecs::Client::new(&shared),
            aws_sdk_ssm::Client::new(&shared),
        )
        .with_sts(aws_sdk_sts::Client::new(&shared))
        .with_kms(aws_sdk_kms::Client::new(&shared))
        .with_service_discovery(aws_sdk_servicediscovery::Client::new(&shared));
        if cfg.endpoint_url.is_none()
            && let Some(region) = region
        {
            plane.ctx.endpoint = format!("AWS ({region})");
        }
        Ok(plane)
    }

    /// Wraps ready-made clients (tests point them at moto or aws-smithy-mocks).
    pub fn from_clients(
        env: Environment,
        cfg: EnvConfig,
        settings: Settings,
        elasticache: aws_sdk_elasticache::Client,
        ecs: aws_sdk_ecs::Client,
        ssm: aws_sdk_ssm::Client,
    ) -> AwsControlPlane {
        let endpoint = cfg
            .endpoint_url
            .clone()
            .or_else(|| cfg.region.as_ref().map(|r| format!("AWS ({r})")))
            .unwrap_or_else(|| "AWS".to_string());
        let ctx = ErrorContext {
            profile: cfg.profile.clone(),
            endpoint,
            call_timeout: settings.call_timeout,
        };
        AwsControlPlane {
            env,
            cfg,
            settings,
            elasticache,
            ecs,
            ssm,
            sts: None,
            kms: None,
            servicediscovery: None,
            memo: std::sync::Arc::default(),
            ctx,
        }
    }

    /// Adds the STS client that answers [`ControlPlane::caller_identity`].
    pub fn with_sts(mut self, sts: aws_sdk_sts::Client) -> Self {
        self.sts = Some(sts);
        self
    }

    /// Uses `kms` for the data keys of KMS-encrypted ECS Exec sessions.
    pub fn with_kms(mut self, kms: aws_sdk_kms::Client) -> Self {
        self.kms = Some(kms);
        self
    }

    /// Uses `client` to read the Cloud Map names of ECS services.
    pub fn with_service_discovery(mut self, client: aws_sdk_servicediscovery::Client) -> Self {
        self.servicediscovery = Some(client);
        self
    }

    /// Replaces where the environment came from (e.g. the config file path).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.env.source = source.into();
        self
    }

    /// Classifies an SDK failure of `operation`.
    fn fail<E>(&self, operation: &str, err: &SdkError<E, HttpResponse>) -> ControlPlaneError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let classified = errors::classify(operation, &self.ctx, err);
        tracing::debug!(env = %self.env.name, operation, error = %classified, "aws call failed");
        classified
    }

    fn timeout(&self) -> Duration {
        self.settings.call_timeout
    }
}

#[async_trait]
impl ControlPlane for AwsControlPlane {
    fn environment(&self) -> &Environment {
        &self.env
    }

    async fn discover(&self) -> Result<Discovery, ControlPlaneError> {
        self.discover_all().await
    }

    async fn get_parameter(&self, name: &str) -> Result<Option<Parameter>, ControlPlaneError> {
        self.ssm_get(name).await
    }

    async fn get_parameters_by_path(
        &self,
        path: &str,
    ) -> Result<Vec<Parameter>, ControlPlaneError> {
        self.ssm_get_by_path(path).await
    }

    async fn put_parameter(&self, put: PutParameter) -> Result<i64, ControlPlaneError> {
        self.ssm_put(put).await
    }

    async fn get_parameter_at(
        &self,
        name: &str,
        at: &crate::controlplane::ParameterSelector,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        self.ssm_get_at(name, at).await
    }

    async fn delete_parameter(&self, name: &str) -> Result<(), ControlPlaneError> {
        self.ssm_delete(name).await
    }

    async fn label_parameter_version(
        &self,
        name: &str,
        version: Option<i64>,
        labels: &[String],
    ) -> Result<crate::controlplane::LabelOutcome, ControlPlaneError> {
        self.ssm_label(name, version, labels).await
    }

    async fn get_parameter_history(
        &self,
        name: &str,
    ) -> Result<Vec<crate::controlplane::ParameterVersion>, ControlPlaneError> {
        self.ssm_history(name).await
    }

    async fn describe_events(
        &self,
        query: EventQuery,
    ) -> Result<Vec<CacheEvent>, ControlPlaneError> {
        self.events(query).await
    }

    async fn test_failover(
        &self,
        replication_group: &str,
        node_group: &str,
    ) -> Result<(), ControlPlaneError> {
        self.failover(replication_group, node_group).await
    }

    async fn caller_identity(&self) -> Result<Account, ControlPlaneError> {
        const OP: &str = "GetCallerIdentity";
        let Some(sts) = &self.sts else {
            return Err(ControlPlaneError::Unsupported {
                operation: OP.to_string(),
                target: format!("environment `{}`", self.env.name),
                why: "this plane was built without an STS client".to_string(),
            });
        };
        controlplane::with_timeout(OP, self.timeout(), async {
            let out = sts
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| self.fail(OP, &e))?;
            Ok(Account {
                id: out.account().unwrap_or_default().to_string(),
                caller_arn: out.arn().unwrap_or_default().to_string(),
            })
        })
        .await
    }

    // ---- ECS Exec ----

    async fn ecs_service_definitions(
        &self,
    ) -> Result<Vec<crate::controlplane::EcsServiceDefinition>, ControlPlaneError> {
        self.service_definitions().await
    }

    fn configured_consumers(
        &self,
        cache: &crate::domain::Cache,
    ) -> Vec<crate::controlplane::ConsumerService> {
        self.config_consumers(cache)
    }

    async fn exec_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<crate::controlplane::ExecTask>, ControlPlaneError> {
        crate::controlplane::with_timeout(
            "DescribeTasks",
            self.timeout(),
            self.list_exec_tasks(cluster, service),
        )
        .await
    }

    async fn execute_command(
        &self,
        req: crate::controlplane::ExecCommand,
    ) -> Result<crate::controlplane::ExecStarted, ControlPlaneError> {
        crate::controlplane::with_timeout("ExecuteCommand", self.timeout(), self.exec(req)).await
    }

    fn exec_data_keys(&self) -> Option<std::sync::Arc<dyn crate::ecsexec::crypto::DataKeys>> {
        self.kms.clone().map(|client| {
            std::sync::Arc::new(crate::ecsexec::crypto::KmsDataKeys { client })
                as std::sync::Arc<dyn crate::ecsexec::crypto::DataKeys>
        })
    }

    // ---- Auth rotation (aws::auth) ----

    async fn replication_group_auth(
        &self,
        replication_group: &str,
    ) -> Result<crate::controlplane::GroupAuth, ControlPlaneError> {
        self.group_auth_state(replication_group).await
    }

    async fn modify_auth_token(
        &self,
        replication_group: &str,
        token: Option<&secrecy::SecretString>,
        strategy: crate::controlplane::AuthTokenStrategy,
    ) -> Result<crate::controlplane::GroupAuth, ControlPlaneError> {
        self.modify_group_token(replication_group, token, strategy)
            .await
    }

    async fn describe_user(
        &self,
        user_id: &str,
    ) -> Result<crate::controlplane::UserAuth, ControlPlaneError> {
        self.user_state(user_id).await
    }

    async fn modify_user_passwords(
        &self,
        user_id: &str,
        passwords: &[secrecy::SecretString],
    ) -> Result<crate::controlplane::UserAuth, ControlPlaneError> {
        self.modify_user_secrets(user_id, passwords).await
    }

    // ---- Snapshots, restores and ECS deployments ----------------------------------------

    async fn create_snapshot(
        &self,
        name: &str,
        target: SnapshotTarget,
    ) -> Result<Snapshot, ControlPlaneError> {
        self.create_snapshot_call(name, target).await
    }

    async fn describe_snapshots(
        &self,
        query: SnapshotQuery,
    ) -> Result<Vec<Snapshot>, ControlPlaneError> {
        self.describe_snapshots_call(query).await
    }

    async fn delete_snapshot(&self, name: &str, serverless: bool) -> Result<(), ControlPlaneError> {
        self.delete_snapshot_call(name, serverless).await
    }

    async fn restore_snapshot(&self, request: RestoreRequest) -> Result<(), ControlPlaneError> {
        self.restore_call(request).await
    }

    async fn force_new_deployment(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<(), ControlPlaneError> {
        self.force_new_deployment_call(cluster, service).await
    }

    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<EcsServiceState, ControlPlaneError> {
        self.describe_service_call(cluster, service).await
    }

    async fn stop_task(
        &self,
        cluster: &str,
        task: &str,
        reason: &str,
    ) -> Result<(), ControlPlaneError> {
        self.stop_task_call(cluster, task, reason).await
    }
}

#[cfg(test)]
mod tests {
    use super::SDK_LOG_CLAMPS;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::EnvFilter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut inner) = self.0.lock() {
                inner.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn sdk_trace_lines_stay_out_of_the_log_even_when_asked_for() {
        for user in [
            "trace",
            "cachedeck=trace,aws_smithy_runtime=trace,hyper_util=trace",
        ] {
            let mut filter = EnvFilter::new(user);
            for clamp in SDK_LOG_CLAMPS {
                filter = filter.add_directive(clamp.parse().expect("valid directive"));
            }
            let buffer = Buffer::default();
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_env_filter(filter)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "body=s3cret");
                tracing::trace!(target: "hyper_util::client", "header=s3cret");
                tracing::trace!(
                    target: "aws_config::credential_process",
                    "running credential_process: vault-get --token s3cret"
                );
                tracing::debug!(
                    target: "aws_config::credential_process",
                    "loading credentials from external process: vault-get --token s3cret"
                );
                tracing::info!(target: "aws_config::profile", "profile resolved");
                tracing::debug!(target: "aws_smithy_runtime::client::retries", "attempt 2");
                tracing::trace!(target: "cachedeck::estate", "still traced");
            });
            let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
            assert!(!text.contains("s3cret"), "{user}: {text}");
            assert!(text.contains("attempt 2"), "{user}: {text}");
            assert!(text.contains("profile resolved"), "{user}: {text}");
            assert!(text.contains("still traced"), "{user}: {text}");
        }
    }
}
