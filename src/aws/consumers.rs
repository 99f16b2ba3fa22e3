//! What consumer discovery reads on AWS: every ECS service of the account's clusters
//! (ListClusters, ListServices, DescribeServices) with its task definition's containers
//! (DescribeTaskDefinition: `environment` and `secrets`), and the consumers the config names.
//! The matching itself is `crate::consumers`, shared with every plane.

use super::AwsControlPlane;
use crate::controlplane::{
    ConsumerService, ContainerDefinition, ControlPlaneError, EcsServiceDefinition, with_timeout,
};
use crate::domain::Cache;
use futures::future::join_all;
use std::collections::BTreeMap;

/// DescribeServices takes at most 10 names per call.
const SERVICES_PER_CALL: usize = 10;

fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The containers of a task definition as consumer discovery reads them.
pub fn containers(td: &aws_sdk_ecs::types::TaskDefinition) -> Vec<ContainerDefinition> {
    td.container_definitions()
        .iter()
        .map(|c| ContainerDefinition {
            name: c.name().unwrap_or_default().to_string(),
            environment: c
                .environment()
                .iter()
                .map(|kv| {
                    (
                        kv.name().unwrap_or_default().to_string(),
                        kv.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            secrets: c
                .secrets()
                .iter()
                .map(|s| (s.name().to_string(), s.value_from().to_string()))
                .collect(),
        })
        .collect()
}

impl AwsControlPlane {
    pub(super) async fn service_definitions(
        &self,
    ) -> Result<Vec<EcsServiceDefinition>, ControlPlaneError> {
        const CLUSTERS: &str = "ListClusters";
        let clusters: Vec<String> = with_timeout(CLUSTERS, self.timeout(), async {
            self.ecs
                .list_clusters()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.fail(CLUSTERS, &e))
        })
        .await?;
        let mut services = Vec::new();
        for cluster in &clusters {
            let arns = self.list_services(cluster).await?;
            for chunk in arns.chunks(SERVICES_PER_CALL) {
                const OP: &str = "DescribeServices";
                let out = with_timeout(OP, self.timeout(), async {
                    self.ecs
                        .describe_services()
                        .cluster(cluster)
                        .set_services(Some(chunk.to_vec()))
                        .send()
                        .await
                        .map_err(|e| self.fail(OP, &e))
                })
                .await?;
                for s in out.services() {
                    services.push((
                        last_segment(cluster).to_string(),
                        s.service_name().unwrap_or_default().to_string(),
                        s.task_definition().unwrap_or_default().to_string(),
                        s.running_count(),
                    ));
                }
            }
        }
        // Each task definition once, looked up at once.
        let mut wanted: Vec<String> = services
            .iter()
            .map(|s| s.2.clone())
            .filter(|t| !t.is_empty())
            .collect();
        wanted.sort();
        wanted.dedup();
        let found = join_all(wanted.iter().map(|td| async move {
            const OP: &str = "DescribeTaskDefinition";
            let out = with_timeout(OP, self.timeout(), async {
                self.ecs
                    .describe_task_definition()
                    .task_definition(td)
                    .send()
                    .await
                    .map_err(|e| self.fail(OP, &e))
            })
            .await?;
            Ok::<_, ControlPlaneError>((
                td.clone(),
                out.task_definition().map(containers).unwrap_or_default(),
            ))
        }))
        .await;
        let mut defs = BTreeMap::new();
        for f in found {
            let (td, c) = f?;
            defs.insert(td, c);
        }
        Ok(services
            .into_iter()
            .map(|(cluster, service, td, running)| EcsServiceDefinition {
                containers: defs.get(&td).cloned().unwrap_or_default(),
                cluster,
                service,
                task_definition: td,
                running,
            })
            .collect())
    }

    pub(super) fn config_consumers(&self, cache: &Cache) -> Vec<ConsumerService> {
        self.cfg
            .consumers
            .iter()
            .filter(|c| c.cache == cache.name)
            .map(|c| ConsumerService {
                cluster: c.cluster.clone(),
                service: c.service.clone(),
                variables: Vec::new(),
                container: c.container.clone(),
                running: None,
                found_by: "config".into(),
            })
            .collect()
    }
}
