//! Environments that exist without a config file: one per profile of the user's AWS config
//! (as k9s reads kubeconfig), and the sandbox's while it is up.

use super::EnvConfig;
use crate::domain::{Protection, ProviderKind};
use std::collections::BTreeMap;

/// One `aws` environment per profile in `~/.aws/config` (or `$AWS_CONFIG_FILE`), named after
/// the profile, protection `read-only` until the user says otherwise in a config file.
pub async fn aws_profile_environments() -> BTreeMap<String, EnvConfig> {
    let fs = aws_types::os_shim_internal::Fs::real();
    let env = aws_types::os_shim_internal::Env::real();
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let Ok(profiles) = aws_config::profile::load(&fs, &env, &files, None).await else {
        return BTreeMap::new();
    };
    profiles
        .profiles()
        .map(|name| {
            let mut config = EnvConfig::implied(ProviderKind::Aws, Protection::ReadOnly);
            config.profile = Some(name.to_string());
            config.region = profiles
                .get_profile(name)
                .and_then(|p| p.get("region"))
                .map(str::to_string);
            (name.to_string(), config)
        })
        .collect()
}

/// The environments a user has with no config file: the running sandbox's, their AWS
/// profiles', and `default` when credentials come from the machine rather than a profile
/// (see [`ambient_credentials`]). `sandbox_envs` comes from the sandbox state (empty when
/// it is down).
pub async fn implied_environments(
    sandbox_envs: BTreeMap<String, EnvConfig>,
) -> BTreeMap<String, EnvConfig> {
    let mut envs = aws_profile_environments().await;
    if !envs.contains_key(DEFAULT_ENV)
        && let Some(source) = ambient_credentials(&|name| std::env::var(name).ok(), &read_file)
    {
        tracing::debug!(source, "implied `default` environment");
        // The default credential chain, read-only until a config file says otherwise.
        envs.insert(
            DEFAULT_ENV.to_string(),
            EnvConfig::implied(ProviderKind::Aws, Protection::ReadOnly),
        );
    }
    envs.extend(sandbox_envs);
    envs
}

/// The environment of credentials that belong to no profile.
pub const DEFAULT_ENV: &str = "default";

fn read_file(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Where this machine offers AWS credentials without a profile, found without a network
/// call: exported keys, a web identity token (EKS), ECS container credentials (a task
/// role), or an EC2 instance (its instance role, unless instance metadata is disabled).
pub fn ambient_credentials(
    var: &dyn Fn(&str) -> Option<String>,
    file: &dyn Fn(&str) -> Option<String>,
) -> Option<&'static str> {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    if set("AWS_ACCESS_KEY_ID") {
        Some("environment variables")
    } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        Some("web identity token")
    } else if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    {
        Some("ECS container credentials")
    } else if var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        None
    } else {
        let ec2 = file("/sys/devices/virtual/dmi/id/sys_vendor")
            .is_some_and(|v| v.contains("Amazon EC2"))
            || file("/sys/devices/virtual/dmi/id/board_asset_tag")
                .is_some_and(|v| v.trim().starts_with("i-"))
            || file("/sys/hypervisor/uuid").is_some_and(|v| v.starts_with("ec2"));
        ec2.then_some("EC2 instance role")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambient_credentials_are_found_without_a_network_call() {
        let none = |_: &str| None;
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(ambient_credentials(&none, &none), None);
        assert_eq!(
            ambient_credentials(&vars(&[("AWS_ACCESS_KEY_ID", "AKIA")]), &none),
            Some("environment variables")
        );
        assert_eq!(
            ambient_credentials(
                &vars(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds")]),
                &none
            ),
            Some("ECS container credentials")
        );
        let ec2 = |path: &str| {
            (path == "/sys/devices/virtual/dmi/id/sys_vendor").then(|| "Amazon EC2\n".to_string())
        };
        assert_eq!(ambient_credentials(&none, &ec2), Some("EC2 instance role"));
        assert_eq!(
            ambient_credentials(&vars(&[("AWS_EC2_METADATA_DISABLED", "true")]), &ec2),
            None
        );
    }
}
