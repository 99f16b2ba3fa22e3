//! The direct connectivity check: from where cachedeck runs, can a client reach an endpoint
//! layer by layer — DNS resolution, TCP connect, TLS handshake (certificate and SNI checked),
//! AUTH/ACL, PING — how fast do PINGs come back (p50/p99 over N), and what role answers.
//!
//! [`check`] is a plain function returning a serialisable (and deserialisable) report, so the
//! same check can later run inside an ECS task through ECS Exec and be read back as JSON.
//! A failure names the layer and the likely cause; nothing in the report holds a secret.

pub mod remote;

use crate::domain::Endpoint;
use crate::escape::escape_capped;
use crate::valkey::connect::{ConnectError, Connector, Layer, Step};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// One layer of the check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// `dns`, `tcp`, `tls`, `auth`, `ping`, `latency`, `role`.
    pub layer: String,
    pub ok: bool,
    /// How long the layer took, ms (`None` when measured together with the next one).
    pub ms: Option<f64>,
    pub detail: String,
}

/// Why the check stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub layer: String,
    pub detail: String,
    pub likely_cause: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} layer: {}", self.layer, self.detail)?;
        if let Some(c) = &self.likely_cause {
            write!(f, "; likely cause: {c}")?;
        }
        Ok(())
    }
}

/// PING round trips over the established connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectivityReport {
    /// `host:port` as dialled.
    pub target: String,
    pub tls: bool,
    pub ok: bool,
    pub stages: Vec<Stage>,
    pub failure: Option<Failure>,
    pub latency: Option<Latency>,
    /// `primary` or `replica` as the server says (ROLE).
    pub role: Option<String>,
    /// The user the server says we are (ACL WHOAMI), when it answers.
    pub user: Option<String>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The layer a connect failure belongs to, named as the check's stages are.
fn layer_of(e: &ConnectError) -> &'static str {
    match e.layer {
        Layer::Secret => "secret",
        Layer::Dns => "dns",
        Layer::Tcp => "tcp",
        Layer::Tls => "tls",
        Layer::Auth => "auth",
        // A timeout says which stage it happened in.
        Layer::Timeout if e.detail.contains("tls handshake") => "tls",
        Layer::Timeout if e.detail.contains("login") => "auth",
        Layer::Timeout if e.detail.contains("tcp") => "tcp",
        Layer::Timeout if e.detail.contains("dns") => "dns",
        Layer::Protocol | Layer::Timeout => "ping",
        Layer::Server => "ping",
    }
}

impl ConnectivityReport {
    fn new(endpoint: &Endpoint) -> Self {
        ConnectivityReport {
            target: endpoint.address(),
            tls: endpoint.tls,
            ok: false,
            stages: Vec::new(),
            failure: None,
            latency: None,
            role: None,
            user: None,
        }
    }

    fn stage(&mut self, layer: &str, took: Option<Duration>, detail: impl Into<String>) {
        self.stages.push(Stage {
            layer: layer.into(),
            ok: true,
            ms: took.map(ms),
            detail: detail.into(),
        });
    }

    /// Records the failure; `connecting` while logging in, whose stage (AUTH proved by the
    /// first PING) is `auth` whatever broke in it.
    fn fail(mut self, e: &ConnectError, connecting: bool) -> Self {
        let layer = match layer_of(e) {
            "ping" if connecting => "auth",
            other => other,
        }
        .to_string();
        // The connector names the cause where the wire shows one (a TLS endpoint answers
        // plain text with a TLS alert; a reply cut short is not a TLS mismatch).
        let likely_cause = e.likely_cause.clone();
        self.stages.push(Stage {
            layer: layer.clone(),
            ok: false,
            ms: None,
            detail: e.detail.clone(),
        });
        self.failure = Some(Failure {
            layer,
            detail: e.detail.clone(),
            likely_cause,
        });
        self
    }
}

/// Checks `endpoint` layer by layer with `connector`'s credentials, TLS settings and
/// deadlines, then sends `pings` PINGs. Never fails: the report says what broke.
pub async fn check(connector: &Connector, endpoint: &Endpoint, pings: u32) -> ConnectivityReport {
    let mut report = ConnectivityReport::new(endpoint);
    // DNS, TCP, TLS (certificate chain and the name dialled), AUTH and the first PING, as
    // a client does, each layer reported with its time as it succeeds.
    let mut layers: Vec<Step> = Vec::new();
    let connected = connector
        .connect_traced(endpoint, &mut |s| layers.push(s))
        .await;
    for s in layers {
        let name = match s.layer {
            Layer::Auth => "auth",
            other => other.as_str(),
        };
        report.stage(name, Some(s.took), s.detail);
    }
    let mut conn = match connected {
        Ok(c) => c,
        Err(e) => return report.fail(&e, true),
    };
    if let Ok(user) = conn
        .query::<String>(&redis::cmd("ACL").arg("WHOAMI").to_owned())
        .await
    {
        report.user = Some(escape_capped(user, 100));
    }
    let t = Instant::now();
    match conn.query::<String>(&redis::cmd("PING")).await {
        Ok(_) => report.stage("ping", Some(t.elapsed()), "PONG"),
        Err(e) => return report.fail(&e, false),
    }

    let mut samples = Vec::with_capacity(pings as usize);
    for _ in 0..pings.max(1) {
        let t = Instant::now();
        match conn.query::<String>(&redis::cmd("PING")).await {
            Ok(_) => samples.push(ms(t.elapsed())),
            Err(e) => return report.fail(&e, false),
        }
    }
    samples.sort_by(f64::total_cmp);
    let latency = Latency {
        count: samples.len() as u32,
        p50_ms: percentile(&samples, 50.0),
        p99_ms: percentile(&samples, 99.0),
        max_ms: samples.last().copied().unwrap_or(0.0),
    };
    report.stage(
        "latency",
        None,
        format!(
            "{} PINGs: p50 {} ms, p99 {} ms",
            latency.count, latency.p50_ms, latency.p99_ms
        ),
    );
    report.latency = Some(latency);

    // ROLE's first element: master / slave (sentinel aside).
    match conn.query::<redis::Value>(&redis::cmd("ROLE")).await {
        Ok(redis::Value::Array(items)) => {
            let role = match items.first() {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => "unknown".into(),
            };
            let role = match role.as_str() {
                "master" => "primary".to_string(),
                "slave" => "replica".to_string(),
                other => escape_capped(other, 40),
            };
            report.stage("role", None, role.clone());
            report.role = Some(role);
        }
        Ok(_) => report.stage("role", None, "unexpected ROLE reply"),
        Err(e) => report.stage("role", None, format!("ROLE not answered: {}", e.detail)),
    }
    report.ok = true;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn a_tls_timeout_is_reported_at_the_tls_layer() {
        let e = ConnectError::new(
            Layer::Timeout,
            "h:1",
            "no answer within 1s during the tls handshake",
            None,
        );
        assert_eq!(layer_of(&e), "tls");
        let e = ConnectError::new(
            Layer::Timeout,
            "h:1",
            "no answer within 1s during login",
            None,
        );
        assert_eq!(layer_of(&e), "auth");
    }
}
