//! What discovery learns once and keeps for the life of the control plane (the TUI
//! re-discovers every 15 s): task definitions by revision ARN (immutable), Cloud Map names
//! by registry ARN (a Cloud Map service cannot be renamed), and the non-secret parts of
//! SecureString URLs by parameter version, so a re-discovery costs no KMS Decrypt and no
//! audit-log line per secret. Failures are never kept: the next discovery asks again.

use super::ssm_caches::EndpointValue;
use std::collections::HashMap;
use std::sync::Mutex;

/// A task definition revision and the container asked for.
pub(super) type ImageKey = (String, Option<String>);
/// What a parameter's value said (without the secret), or why it could not be used.
pub(super) type Parsed = Result<EndpointValue, String>;

#[derive(Debug, Default)]
pub(super) struct Memo {
    images: Mutex<HashMap<ImageKey, String>>,
    names: Mutex<HashMap<String, super::cloudmap::ServiceName>>,
    /// Parameter name → its version and what that version said.
    secure: Mutex<HashMap<String, (i64, Parsed)>>,
}

impl Memo {
    pub(super) fn image(&self, key: &ImageKey) -> Option<String> {
        lock(&self.images).get(key).cloned()
    }

    pub(super) fn keep_image(&self, key: ImageKey, image: String) {
        lock(&self.images).insert(key, image);
    }

    pub(super) fn name(&self, registry: &str) -> Option<super::cloudmap::ServiceName> {
        lock(&self.names).get(registry).cloned()
    }

    pub(super) fn keep_name(&self, registry: &str, name: super::cloudmap::ServiceName) {
        lock(&self.names).insert(registry.to_string(), name);
    }

    pub(super) fn secure(&self, parameter: &str, version: i64) -> Option<Parsed> {
        lock(&self.secure)
            .get(parameter)
            .filter(|(v, _)| *v == version)
            .map(|(_, parsed)| parsed.clone())
    }

    pub(super) fn keep_secure(&self, parameter: &str, version: i64, parsed: Parsed) {
        lock(&self.secure).insert(parameter.to_string(), (version, parsed));
    }
}

/// A poisoned map only means another discovery panicked mid-insert; the map is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
