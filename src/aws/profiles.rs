//! AWS profiles as environments use them: whether a profile exists (and which do), its
//! region, and a credentials provider that reads that profile and nothing else.

use crate::controlplane::ControlPlaneError;
use aws_config::Region;
use aws_config::meta::region::ProvideRegion;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::SharedCredentialsProvider;

/// The profile names the user's AWS config and credentials files define, sorted; `Err`
/// with the parser's message when a file cannot be read as a profile file.
pub async fn known() -> Result<Vec<String>, String> {
    let fs = aws_types::os_shim_internal::Fs::real();
    let env = aws_types::os_shim_internal::Env::real();
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let set = aws_config::profile::load(&fs, &env, &files, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut names: Vec<String> = set.profiles().map(str::to_string).collect();
    names.sort();
    Ok(names)
}

/// The files profiles are read from, as the user would name them.
pub fn files() -> String {
    let config = std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| "~/.aws/config".to_string());
    let credentials = std::env::var("AWS_SHARED_CREDENTIALS_FILE")
        .unwrap_or_else(|_| "~/.aws/credentials".to_string());
    format!("{config} (or {credentials})")
}

/// `Ok` when `profile` is defined; otherwise the one line that says so and lists the
/// profiles there are (instead of the instance-metadata error the chain would end on).
pub async fn ensure_defined(profile: &str) -> Result<(), ControlPlaneError> {
    match known().await {
        Ok(names) if names.iter().any(|n| n == profile) => Ok(()),
        Ok(names) => Err(ControlPlaneError::UnknownProfile {
            profile: profile.to_string(),
            files: files(),
            known: if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
        }),
        Err(parse) => Err(ControlPlaneError::Credentials {
            detail: format!("the AWS config files cannot be read: {parse}"),
            hint: format!("fix {}", files()),
        }),
    }
}

/// The `region` of `profile`, if it sets one.
pub async fn region_of(profile: &str) -> Option<Region> {
    ProfileFileRegionProvider::builder()
        .profile_name(profile)
        .build()
        .region()
        .await
}

/// Credentials from `profile` only: its static keys, SSO session, role to assume or
/// `credential_process` — never the process's `AWS_ACCESS_KEY_ID`, which the default chain
/// would prefer. `region` is where STS/SSO calls of the profile go.
pub fn credentials(profile: &str, region: Option<Region>) -> SharedCredentialsProvider {
    let conf = ProviderConfig::without_region().with_region(region);
    SharedCredentialsProvider::new(
        ProfileFileCredentialsProvider::builder()
            .configure(&conf)
            .profile_name(profile)
            .build(),
    )
}
