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

/// The environments a user has with no config file: the running sandbox's and their AWS
/// profiles'. `sandbox_envs` comes from the sandbox state (empty when it is down).
pub async fn implied_environments(
    sandbox_envs: BTreeMap<String, EnvConfig>,
) -> BTreeMap<String, EnvConfig> {
    let mut envs = aws_profile_environments().await;
    envs.extend(sandbox_envs);
    envs
}
