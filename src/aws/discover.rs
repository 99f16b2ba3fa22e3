//! One discovery pass over an environment: the ElastiCache describes run concurrently, then
//! ECS services and SSM-named caches; filters from `[discovery]` are applied throughout.
//!
//! A failure that dooms every call (credentials, no network) ends the pass with that error;
//! a failure of one source (e.g. no IAM permission for ECS) becomes a warning line so the
//! rest of the estate still shows.

use super::AwsControlPlane;
use super::map;
use super::ssm_caches;
use crate::controlplane::{ControlPlaneError, Discovery};
use crate::domain::{Cache, CacheKind};
use futures::future::join_all;
use std::collections::HashSet;

impl AwsControlPlane {
    pub(super) async fn discover_all(&self) -> Result<Discovery, ControlPlaneError> {
        let filter = &self.cfg.discovery;
        let env = self.env.name.as_str();
        let want_groups = filter.wants(CacheKind::ReplicationGroup);
        let want_clusters = filter.wants(CacheKind::CacheCluster);
        let want_serverless = filter.wants(CacheKind::Serverless);

        let vars = self.cfg.template_vars(env);
        let ecs_configs = if filter.wants(CacheKind::EcsService) {
            self.cfg.ecs.as_slice()
        } else {
            &[]
        };
        // ECS and SSM lookups do not depend on the ElastiCache describes, so all run at
        // once; SSM targets are merged only after every cache is known.
        let ecs_lookups = join_all(ecs_configs.iter().map(|ecs| async move {
            let mut warnings = Vec::new();
            let result = self.discover_ecs(ecs, &mut warnings).await;
            (ecs, result, warnings)
        }));
        let ssm_lookups = join_all(self.cfg.ssm.iter().map(|ssm| {
            let vars = &vars;
            async move {
                let mut warnings = Vec::new();
                let result = self.resolve_ssm(ssm, vars, &mut warnings).await;
                (ssm, result, warnings)
            }
        }));

        let (clusters, groups, serverless, ecs_results, ssm_results) = tokio::join!(
            async {
                if want_groups || want_clusters {
                    Some(self.describe_cache_clusters().await)
                } else {
                    None
                }
            },
            async {
                if want_groups {
                    Some(self.describe_replication_groups().await)
                } else {
                    None
                }
            },
            async {
                if want_serverless {
                    Some(self.describe_serverless_caches().await)
                } else {
                    None
                }
            },
            ecs_lookups,
            ssm_lookups,
        );

        let mut tally = Tally::default();
        let clusters = tally.take("cache clusters", clusters)?.unwrap_or_default();
        let groups = tally
            .take("replication groups", groups)?
            .unwrap_or_default();
        let serverless = tally
            .take("serverless caches", serverless)?
            .unwrap_or_default();

        let mut found: Vec<Cache> = Vec::new();
        let members = map::member_index(&clusters);
        found.extend(
            groups
                .iter()
                .map(|rg| map::replication_group(env, rg, &members)),
        );
        found.extend(serverless.iter().map(|sc| map::serverless(env, sc)));
        if want_clusters {
            // A member is known by its ReplicationGroupId, or (should that be absent) by
            // being listed in a group's MemberClusters.
            let in_group: HashSet<&str> = groups
                .iter()
                .flat_map(|g| g.member_clusters().iter().map(String::as_str))
                .collect();
            found.extend(
                clusters
                    .iter()
                    .filter(|c| c.replication_group_id().is_none_or(str::is_empty))
                    .filter(|c| {
                        c.cache_cluster_id()
                            .is_some_and(|id| !in_group.contains(id))
                    })
                    .filter_map(|c| map::cache_cluster(env, c)),
            );
        }
        found.retain(|c| filter.keeps_name(&c.name));
        let mut caches = self.keep_tagged(found, &mut tally.warnings).await?;

        for (ecs, result, mut warnings) in ecs_results {
            tally.warnings.append(&mut warnings);
            let label = format!("ecs cluster {}", ecs.cluster);
            if let Some(mut more) = tally.take_own(&label, Some(result))? {
                caches.append(&mut more);
            }
        }

        let add_endpoints = filter.wants(CacheKind::Endpoint);
        for (ssm, result, mut warnings) in ssm_results {
            tally.warnings.append(&mut warnings);
            let label = format!("ssm cache {}", ssm.name);
            if let Some(Some(target)) = tally.take_own(&label, Some(result))? {
                ssm_caches::merge(env, &mut caches, target, add_endpoints);
            }
        }

        if tally.attempted > 0
            && tally.failed == tally.attempted
            && let Some(first) = tally.first_error
        {
            return Err(first);
        }
        caches.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        for warning in &tally.warnings {
            tracing::warn!(env, warning = %warning, "discovery warning");
        }
        Ok(Discovery {
            caches,
            warnings: tally.warnings,
        })
    }

    /// Keeps caches carrying every configured tag; ListTagsForResource is only called when
    /// tags are configured (it costs one call per cache).
    async fn keep_tagged(
        &self,
        caches: Vec<Cache>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Cache>, ControlPlaneError> {
        let wanted = &self.cfg.discovery.tags;
        if wanted.is_empty() {
            return Ok(caches);
        }
        let mut kept = Vec::new();
        for cache in caches {
            let Some(arn) = cache.arn.as_deref() else {
                warnings.push(format!("{}: no ARN to read tags from; skipped", cache.name));
                continue;
            };
            match self.tags_of(arn).await {
                Ok(tags) => {
                    if wanted.iter().all(|(k, v)| tags.get(k) == Some(v)) {
                        kept.push(cache);
                    }
                }
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => warnings.push(format!("tags of {}: {e}; skipped", cache.name)),
            }
        }
        Ok(kept)
    }
}

/// Errors that would repeat for every further call, so discovery stops at once.
pub(super) fn is_fatal(err: &ControlPlaneError) -> bool {
    matches!(
        err,
        ControlPlaneError::Credentials { .. } | ControlPlaneError::Unreachable { .. }
    )
}

/// Counts sources tried and failed, and turns survivable failures into warnings.
#[derive(Default)]
struct Tally {
    attempted: usize,
    failed: usize,
    first_error: Option<ControlPlaneError>,
    warnings: Vec<String>,
}

impl Tally {
    fn take<T>(
        &mut self,
        what: &str,
        result: Option<Result<T, ControlPlaneError>>,
    ) -> Result<Option<T>, ControlPlaneError> {
        self.take_from(what, result, true)
    }

    /// A source with its own service endpoint (ECS, SSM): its endpoint being unreachable
    /// (e.g. no VPC endpoint for it) says nothing of ElastiCache's, so it is a warning.
    fn take_own<T>(
        &mut self,
        what: &str,
        result: Option<Result<T, ControlPlaneError>>,
    ) -> Result<Option<T>, ControlPlaneError> {
        self.take_from(what, result, false)
    }

    fn take_from<T>(
        &mut self,
        what: &str,
        result: Option<Result<T, ControlPlaneError>>,
        unreachable_is_fatal: bool,
    ) -> Result<Option<T>, ControlPlaneError> {
        let Some(result) = result else {
            return Ok(None);
        };
        self.attempted += 1;
        match result {
            Ok(value) => Ok(Some(value)),
            Err(e @ ControlPlaneError::Unreachable { .. }) if !unreachable_is_fatal => {
                self.failed += 1;
                self.warnings.push(format!("{what}: {e}"));
                if self.first_error.is_none() {
                    self.first_error = Some(e);
                }
                Ok(None)
            }
            Err(e) if is_fatal(&e) => Err(e),
            Err(e) => {
                self.failed += 1;
                self.warnings.push(format!("{what}: {e}"));
                if self.first_error.is_none() {
                    self.first_error = Some(e);
                }
                Ok(None)
            }
        }
    }
}
