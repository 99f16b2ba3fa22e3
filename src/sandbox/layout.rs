//! What the sandbox is made of: its environments and caches, mirroring the seed estates.

use super::seed::Profile;
use crate::domain::{AuthMode, CacheKind, Protection};

/// The shape of a cache's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One process (serverless stand-in, ECS task).
    Single,
    /// Cluster mode off: a primary and `replicas` replicas.
    Replicated { replicas: usize },
    /// Cluster mode on.
    Cluster { shards: usize, replicas: usize },
}

/// One cache to build.
#[derive(Debug, Clone)]
pub struct CachePlan {
    pub env: &'static str,
    pub name: &'static str,
    pub kind: CacheKind,
    pub shape: Shape,
    pub auth: AuthMode,
    /// Served through TLS endpoints of the daemon (cluster mode: a TLS front per node).
    pub tls: bool,
    pub profile: Profile,
    /// Share of the seeded keys, in percent.
    pub weight: u64,
    pub description: &'static str,
    /// Extra server arguments (eviction policy, save points).
    pub args: &'static [&'static str],
}

pub const DEV: &str = "sandbox-dev";
pub const PROD: &str = "sandbox-prod";

/// The environments and their protection.
pub fn environments() -> [(&'static str, Protection); 2] {
    [(DEV, Protection::Open), (PROD, Protection::Confirm)]
}

/// Every cache of the sandbox.
pub fn caches() -> Vec<CachePlan> {
    vec![
        CachePlan {
            env: DEV,
            name: "orders",
            kind: CacheKind::ReplicationGroup,
            shape: Shape::Replicated { replicas: 2 },
            auth: AuthMode::Token,
            tls: true,
            profile: Profile::Sidekiq,
            weight: 35,
            description: "Sidekiq queues, sessions, rate limits and query cache (seeds 000/003)",
            args: &["--maxmemory-policy", "noeviction"],
        },
        CachePlan {
            env: DEV,
            name: "paperwurks",
            kind: CacheKind::ReplicationGroup,
            shape: Shape::Cluster {
                shards: 3,
                replicas: 1,
            },
            auth: AuthMode::Token,
            tls: true,
            profile: Profile::Celery,
            weight: 30,
            description: "Celery broker and Django cache, cluster mode on (seed 002)",
            args: &["--maxmemory-policy", "volatile-lru"],
        },
        CachePlan {
            env: DEV,
            name: "storefront",
            kind: CacheKind::Serverless,
            shape: Shape::Single,
            auth: AuthMode::Rbac,
            tls: true,
            profile: Profile::Storefront,
            weight: 15,
            description: "serverless product cache; endpoint in /storefront-dev/redis/* (seed 001)",
            args: &["--maxmemory-policy", "volatile-lru"],
        },
        CachePlan {
            env: DEV,
            name: "valkey-ecs",
            kind: CacheKind::EcsService,
            shape: Shape::Single,
            auth: AuthMode::None,
            tls: false,
            profile: Profile::Mixed,
            weight: 10,
            description: "self-managed Valkey on ECS with RDB snapshots (seed 004)",
            args: &[
                "--save",
                "900 1 300 10 60 10000",
                "--dbfilename",
                "dump.rdb",
            ],
        },
        CachePlan {
            env: PROD,
            name: "orders",
            kind: CacheKind::ReplicationGroup,
            shape: Shape::Replicated { replicas: 1 },
            auth: AuthMode::Token,
            tls: true,
            profile: Profile::Sidekiq,
            weight: 6,
            description: "production Sidekiq and sessions, primary + replica (seed 003)",
            args: &["--maxmemory-policy", "noeviction"],
        },
        CachePlan {
            env: PROD,
            name: "storefront",
            kind: CacheKind::Serverless,
            shape: Shape::Single,
            auth: AuthMode::Rbac,
            tls: true,
            profile: Profile::Storefront,
            weight: 4,
            description: "production serverless product cache (seed 001)",
            args: &["--maxmemory-policy", "volatile-lru"],
        },
    ]
}

/// Parameter names of a cache, seed style.
pub fn parameter(env: &str, cache: &str, leaf: &str) -> String {
    let short = env.strip_prefix("sandbox-").unwrap_or(env);
    match cache {
        // Seed 001 keeps them at /storefront-{env}/redis/*.
        "storefront" => format!("/storefront-{short}/redis/{leaf}"),
        // Seeds 002/000 use /{app}/{env}/redis/*.
        _ => format!("/{cache}/{short}/redis/{leaf}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_follow_the_seeds() {
        assert_eq!(
            parameter(DEV, "storefront", "endpoint"),
            "/storefront-dev/redis/endpoint"
        );
        assert_eq!(
            parameter(DEV, "paperwurks", "url"),
            "/paperwurks/dev/redis/url"
        );
        assert_eq!(caches().iter().map(|c| c.weight).sum::<u64>(), 100);
    }
}
