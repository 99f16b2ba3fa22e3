//! The built-in actions steps can name. To add one: write a module under `actions/`
//! implementing [`Action`](crate::runbook::action::Action), then register it in [`builtin`].

mod auth_rotate;
mod check;
mod connectivity;
mod cutover;
mod failover;
mod marker;
mod nodes;
mod parameter;
mod probe;
mod restore;
mod snapshot;
mod survives_restart;
pub mod ttl_audit;
mod ttl_remediate;
mod wait;

use crate::runbook::action::Registry;
use std::sync::Arc;

/// Every built-in action.
pub fn builtin() -> Registry {
    let mut r = Registry::new();
    r.register(Arc::new(wait::Wait));
    r.register(Arc::new(probe::Ping));
    r.register(Arc::new(probe::InfoFields));
    r.register(Arc::new(check::Check));
    r.register(Arc::new(marker::SetMarker));
    r.register(Arc::new(marker::GetMarker));
    r.register(Arc::new(parameter::ParameterPut));
    r.register(Arc::new(parameter::ParameterGet));
    r.register(Arc::new(failover::FailoverPreflight));
    r.register(Arc::new(failover::TestFailover));
    r.register(Arc::new(connectivity::ConnectivityCheck));
    r.register(Arc::new(ttl_audit::TtlAudit));
    r.register(Arc::new(ttl_remediate::TtlRemediateSurvey));
    r.register(Arc::new(ttl_remediate::TtlRemediate));
    // Snapshots and restores.
    r.register(Arc::new(snapshot::SnapshotPreflight));
    r.register(Arc::new(snapshot::SnapshotCreate));
    r.register(Arc::new(restore::RestorePreflight));
    r.register(Arc::new(restore::RestoreCreate));
    r.register(Arc::new(restore::RestoreVerify));
    r.register(Arc::new(cutover::Cutover));
    r.register(Arc::new(cutover::Rollback));
    r.register(Arc::new(survives_restart::RestartPrepare));
    r.register(Arc::new(survives_restart::EcsRestart));
    r.register(Arc::new(survives_restart::RestartVerify));
    r.register(Arc::new(auth_rotate::AuthPreflight));
    r.register(Arc::new(auth_rotate::AuthGenerate));
    r.register(Arc::new(auth_rotate::AuthRotate));
    r.register(Arc::new(auth_rotate::AuthVerifyBoth));
    r.register(Arc::new(auth_rotate::AuthPublish));
    r.register(Arc::new(auth_rotate::AuthRoll));
    r.register(Arc::new(auth_rotate::AuthDrainCheck));
    r.register(Arc::new(auth_rotate::AuthFinalize));
    r
}
