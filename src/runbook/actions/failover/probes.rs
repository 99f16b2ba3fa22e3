//! The client probes of `test-failover`: a writer through the primary endpoint (in cluster
//! mode on a key in the first failed-over shard's slots) and a reader through the reader
//! endpoint, started before the trigger.

use crate::probe::{self, ProbeConfig, ProbeHandle, ProbeKind};
use crate::runbook::action::{ActionContext, ActionError};
use std::time::Duration;

/// The probes of one run, started before the trigger.
pub struct Probes {
    pub writer: ProbeHandle,
    pub reader: Option<ProbeHandle>,
    pub key: String,
}

/// Whether `slot` is in a shard's slot ranges (`0-5460` or `0-100,200-300`).
fn owns(slots: &str, slot: u16) -> bool {
    slots.split(',').any(|r| {
        let (a, b) = r.trim().split_once('-').unwrap_or((r.trim(), r.trim()));
        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
    })
}

/// The probe key: in cluster mode one whose slot the first failed-over shard owns, so the
/// writer measures that shard's failover.
fn probe_key(ctx: &ActionContext, first_shard: Option<&str>) -> String {
    let base = format!("cachedeck:failover-probe:{}", ctx.run_id);
    let slots = first_shard
        .and_then(|id| ctx.cache.shards.iter().find(|s| s.id == id))
        .and_then(|s| s.slots.as_deref());
    match slots {
        Some(slots) if ctx.cache.cluster_mode => (0..100_000)
            .map(|i| format!("{base}:{{{i}}}"))
            .find(|k| owns(slots, crate::valkey::slot::key_slot(k)))
            .unwrap_or(base),
        _ => base,
    }
}

impl Probes {
    pub async fn start(
        ctx: &ActionContext,
        interval: Duration,
        first_shard: Option<&str>,
    ) -> Result<Probes, ActionError> {
        let cache = &ctx.cache;
        let writer_at = cache
            .endpoints
            .primary
            .clone()
            .or_else(|| cache.endpoint.clone())
            .ok_or_else(|| {
                ActionError::failed(format!(
                    "probe `{}`: it has no primary endpoint",
                    cache.name
                ))
            })?;
        let connector = ctx.connector().await?;
        let key = probe_key(ctx, first_shard);
        let config = |kind, endpoint| ProbeConfig {
            kind,
            endpoint,
            key: key.clone(),
            interval,
            attempt_timeout: Duration::from_millis(500),
        };
        let writer = probe::start(connector, config(ProbeKind::Writer, writer_at));
        let reader = cache
            .endpoints
            .reader
            .clone()
            .map(|r| probe::start(connector, config(ProbeKind::Reader, r)));
        Ok(Probes {
            writer,
            reader,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_ranges() {
        assert!(super::owns("0-5460", 0) && super::owns("0-5460", 5460));
        assert!(!super::owns("0-5460", 5461));
        assert!(super::owns("0-10,20-30", 25) && !super::owns("0-10,20-30", 15));
        assert!(super::owns("7", 7));
    }
}
