//! The real control planes behind each provider: what `Estate::load` builds per environment.

use super::PlaneFactory;
use super::local::LocalControlPlane;
use crate::aws::AwsControlPlane;
use crate::controlplane::ControlPlane;
use crate::domain::ProviderKind;
use crate::sandbox::SandboxControlPlane;
use std::sync::Arc;

/// AWS environments get the SDK control plane; sandbox environments the local estate's;
/// static environments one that makes no AWS call.
pub fn default_factory() -> PlaneFactory {
    Arc::new(|name, cfg, settings| {
        Box::pin(async move {
            let plane: Arc<dyn ControlPlane> = match cfg.provider {
                ProviderKind::Aws => {
                    Arc::new(AwsControlPlane::connect(&name, &cfg, &settings).await?)
                }
                ProviderKind::Sandbox => {
                    Arc::new(SandboxControlPlane::open(&name, &cfg, &settings)?)
                }
                ProviderKind::Static => Arc::new(LocalControlPlane::new(&name, &cfg, &settings)),
            };
            Ok(plane)
        })
    })
}
