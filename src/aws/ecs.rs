//! Self-managed Valkey on ECS (seed 004): services → tasks → one `ecs-service` cache each,
//! one node per task, version from the task definition's image tag.

use super::AwsControlPlane;
use super::cloudmap::ServiceName;
use crate::config::EcsConfig;
use crate::controlplane::{ControlPlaneError, with_timeout};
use crate::domain::{
    AuthMode, Cache, CacheKind, Credentials, EcsRef, Endpoint, Endpoints, Node, NodeHealth,
    NodeRole, RoleSource, Shard,
};
use aws_sdk_ecs::types::{HealthStatus, Service, Task};
use futures::future::join_all;

/// DescribeServices takes at most 10 names per call, DescribeTasks at most 100 ARNs.
const SERVICES_PER_CALL: usize = 10;
const TASKS_PER_CALL: usize = 100;

impl AwsControlPlane {
    /// Every configured (or name-matched) service of one ECS cluster as a cache.
    pub(super) async fn discover_ecs(
        &self,
        cfg: &EcsConfig,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Cache>, ControlPlaneError> {
        let names = if cfg.services.is_empty() {
            self.list_valkey_services(&cfg.cluster).await?
        } else {
            cfg.services.clone()
        };
        let mut caches = Vec::new();
        for chunk in names.chunks(SERVICES_PER_CALL) {
            const OP: &str = "DescribeServices";
            let out = with_timeout(OP, self.timeout(), async {
                self.ecs
                    .describe_services()
                    .cluster(&cfg.cluster)
                    .set_services(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| self.fail(OP, &e))
            })
            .await?;
            for failure in out.failures() {
                warnings.push(format!(
                    "ecs {}/{}: {}",
                    cfg.cluster,
                    failure.arn().map(last_segment).unwrap_or("?"),
                    failure.reason().unwrap_or("not found").to_ascii_lowercase()
                ));
            }
            // Each service's tasks, image and name are looked up at once; order is kept.
            let lookups = join_all(out.services().iter().map(|service| async move {
                let image = async {
                    match service.task_definition() {
                        Some(td) => self.valkey_image(td, cfg.container.as_deref()).await,
                        None => None,
                    }
                };
                let name = async {
                    let registry = service
                        .service_registries()
                        .iter()
                        .find_map(|r| r.registry_arn());
                    match registry {
                        // A configured host wins: no need to ask.
                        Some(arn) if cfg.host.is_none() => Some(self.service_name(arn).await),
                        _ => None,
                    }
                };
                let (tasks, image, name) =
                    tokio::join!(self.service_tasks(&cfg.cluster, service), image, name);
                (service, tasks, image, name)
            }))
            .await;
            for (service, tasks, image, name) in lookups {
                // One service's tasks failing is that service's warning, not the cluster's.
                let tasks = match tasks {
                    Ok(tasks) => tasks,
                    Err(e) if super::discover::is_fatal(&e) => return Err(e),
                    Err(e) => {
                        warnings.push(format!(
                            "ecs {}/{}: {e}; skipped",
                            cfg.cluster,
                            service.service_name().unwrap_or("?")
                        ));
                        continue;
                    }
                };
                caches.push(ecs_cache(
                    &self.env.name,
                    cfg,
                    service,
                    &tasks,
                    image.as_deref(),
                    name.as_ref(),
                ));
            }
        }
        Ok(caches)
    }

    /// Every service ARN of one ECS cluster (ListServices, all pages).
    pub(super) async fn list_services(
        &self,
        cluster: &str,
    ) -> Result<Vec<String>, ControlPlaneError> {
        const OP: &str = "ListServices";
        with_timeout(OP, self.timeout(), async {
            self.ecs
                .list_services()
                .cluster(cluster)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.fail(OP, &e))
        })
        .await
    }

    async fn list_valkey_services(&self, cluster: &str) -> Result<Vec<String>, ControlPlaneError> {
        let arns = self.list_services(cluster).await?;
        Ok(arns
            .iter()
            .map(|a| last_segment(a).to_string())
            .filter(|n| {
                let n = n.to_ascii_lowercase();
                n.contains("valkey") || n.contains("redis")
            })
            .collect())
    }

    async fn service_tasks(
        &self,
        cluster: &str,
        service: &Service,
    ) -> Result<Vec<Task>, ControlPlaneError> {
        let Some(name) = service.service_name() else {
            return Ok(Vec::new());
        };
        const LIST: &str = "ListTasks";
        let arns: Vec<String> = with_timeout(LIST, self.timeout(), async {
            self.ecs
                .list_tasks()
                .cluster(cluster)
                .service_name(name)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.fail(LIST, &e))
        })
        .await?;
        let mut tasks = Vec::new();
        for chunk in arns.chunks(TASKS_PER_CALL) {
            const OP: &str = "DescribeTasks";
            let out = with_timeout(OP, self.timeout(), async {
                self.ecs
                    .describe_tasks()
                    .cluster(cluster)
                    .set_tasks(Some(chunk.to_vec()))
                    .send()
                    .await
                    .map_err(|e| self.fail(OP, &e))
            })
            .await?;
            tasks.extend(out.tasks.unwrap_or_default());
        }
        Ok(tasks)
    }

    /// The image of the Valkey container; `None` on any failure (the version is a nicety).
    /// A task definition revision never changes, so each is read once.
    async fn valkey_image(&self, task_definition: &str, container: Option<&str>) -> Option<String> {
        let key = (task_definition.to_string(), container.map(str::to_string));
        if let Some(known) = self.memo.image(&key) {
            return Some(known);
        }
        let image = self.read_valkey_image(task_definition, container).await?;
        self.memo.keep_image(key, image.clone());
        Some(image)
    }

    async fn read_valkey_image(
        &self,
        task_definition: &str,
        container: Option<&str>,
    ) -> Option<String> {
        let call = self
            .ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .send();
        let out = match tokio::time::timeout(self.timeout(), call).await {
            Ok(Ok(out)) => out,
            _ => {
                tracing::debug!(task_definition, "task definition lookup failed");
                return None;
            }
        };
        let defs = out.task_definition()?.container_definitions();
        let chosen = match container {
            Some(name) => defs.iter().find(|d| d.name() == Some(name)),
            None => defs
                .iter()
                .find(|d| {
                    d.image()
                        .is_some_and(|i| i.contains("valkey") || i.contains("redis"))
                })
                .or(defs.first()),
        };
        chosen.and_then(|d| d.image()).map(str::to_string)
    }
}

/// One ECS service and its tasks as a cache; `registry` is what Cloud Map said about the
/// service's registry, when it has one and no host is configured.
pub fn ecs_cache(
    env: &str,
    cfg: &EcsConfig,
    service: &Service,
    tasks: &[Task],
    image: Option<&str>,
    registry: Option<&ServiceName>,
) -> Cache {
    let name = service.service_name().unwrap_or_default().to_string();
    let single = tasks.len() == 1;
    let mut notes = Vec::new();
    let nodes: Vec<Node> = tasks
        .iter()
        .map(|task| {
            let status = task.last_status().unwrap_or("UNKNOWN").to_string();
            let id = task.task_arn().map(last_segment).unwrap_or("?").to_string();
            // bridge / host network mode: the container port is published on a host port,
            // and the address is the container instance's, which the task does not carry.
            let port = host_port(task, cfg.port).unwrap_or(cfg.port);
            let host = task_ip(task).unwrap_or_default();
            if host.is_empty() && status == "RUNNING" {
                notes.push(format!(
                    "task {id} has no address of its own (bridge or host network mode, port {port} on its container instance): set `host` for this service in the config, or register the service in Cloud Map with an A record"
                ));
            }
            Node {
                id,
                role: if single {
                    NodeRole::Primary
                } else {
                    NodeRole::Unknown
                },
                host,
                port,
                availability_zone: task.availability_zone().map(str::to_string),
                health: task_health(&status, task.health_status()),
                status,
                tls: cfg.tls,
                role_source: if single {
                    RoleSource::ControlPlane
                } else {
                    RoleSource::Unknown(
                        "ECS does not say which task is the primary; not asked yet".into(),
                    )
                },
            }
        })
        .collect();
    // Prefer a running task's address: a stopped task's IP may already belong to another.
    let task_address = || {
        nodes
            .iter()
            .filter(|n| !n.host.is_empty())
            .min_by_key(|n| !n.health.is_up())
            .map(|n| (n.host.clone(), n.port))
    };
    let fallback = |why: String, notes: &mut Vec<String>| {
        let address = task_address();
        if let Some((host, _)) = &address {
            notes.push(format!(
                "{why}: using task address {host}, which changes with every deployment"
            ));
        } else {
            notes.push(why);
        }
        address
    };
    let address = match (&cfg.host, registry) {
        (Some(host), _) => Some((host.clone(), cfg.port)),
        (None, Some(ServiceName::Dns(dns))) => {
            notes.push(format!("endpoint from Cloud Map: {dns}"));
            Some((dns.clone(), cfg.port))
        }
        (None, Some(ServiceName::SrvOnly(dns))) => fallback(
            format!("Cloud Map name {dns} has SRV records only (clients cannot use it as a host)"),
            &mut notes,
        ),
        (None, Some(ServiceName::NotDns(dns))) => fallback(
            format!("Cloud Map service {dns} is in an HTTP namespace (no DNS name)"),
            &mut notes,
        ),
        (None, Some(ServiceName::Unknown(why))) => fallback(
            format!("service-discovery name unknown ({why})"),
            &mut notes,
        ),
        (None, None) => task_address(),
    };
    let endpoint = address.map(|(h, port)| Endpoint::new(h, port, cfg.tls));
    notes.insert(
        0,
        format!(
            "ecs {}: {} of {} tasks running",
            cfg.cluster,
            service.running_count(),
            service.desired_count()
        ),
    );
    // The connectivity check runs through ECS Exec; say up front when it cannot.
    if !service.enable_execute_command() || tasks.iter().any(|t| !t.enable_execute_command()) {
        notes.push(
            "ECS Exec is off (enableExecuteCommand=false); update the service with --enable-execute-command and redeploy to use the connectivity check"
                .to_string(),
        );
    }
    let engine = match image {
        Some(i) if i.contains("redis") && !i.contains("valkey") => "redis",
        _ => "valkey",
    };
    Cache {
        name: name.clone(),
        env: env.to_string(),
        kind: CacheKind::EcsService,
        engine: engine.to_string(),
        engine_version: image
            .and_then(image_version)
            .unwrap_or_else(|| "unknown".to_string()),
        status: service.status().unwrap_or("UNKNOWN").to_ascii_lowercase(),
        cluster_mode: false,
        auth: AuthMode::None,
        tls: cfg.tls,
        endpoint: endpoint.clone(),
        endpoints: Endpoints {
            primary: endpoint,
            ..Endpoints::default()
        },
        shards: vec![Shard {
            id: name.clone(),
            slots: None,
            nodes,
        }],
        automatic_failover: false,
        multi_az: false,
        arn: service.service_arn().map(str::to_string),
        description: None,
        notes,
        credentials: Credentials::default(),
        ecs: Some(EcsRef {
            cluster: cfg.cluster.clone(),
            service: name,
            container: cfg.container.clone(),
        }),
    }
}

/// The host port the container port `port` is published on (bridge / host network mode);
/// `None` in awsvpc mode, where the task has its own address and no bindings.
fn host_port(task: &Task, port: u16) -> Option<u16> {
    task.containers()
        .iter()
        .flat_map(|c| c.network_bindings())
        .find(|b| b.container_port() == Some(i32::from(port)))
        .and_then(|b| b.host_port())
        .and_then(|p| u16::try_from(p).ok())
}

/// The task's private IPv4 address from its ENI attachment (awsvpc) or container.
fn task_ip(task: &Task) -> Option<String> {
    task.attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .or_else(|| {
            task.containers()
                .iter()
                .flat_map(|c| c.network_interfaces())
                .find_map(|n| n.private_ipv4_address())
        })
        .map(str::to_string)
}

fn task_health(last_status: &str, health: Option<&HealthStatus>) -> NodeHealth {
    match last_status {
        "RUNNING" if health == Some(&HealthStatus::Unhealthy) => {
            NodeHealth::Down("container health check: unhealthy".to_string())
        }
        "RUNNING" => NodeHealth::Up,
        "STOPPED" | "STOPPING" | "DEPROVISIONING" | "DEACTIVATING" => {
            NodeHealth::Down(format!("task {}", last_status.to_ascii_lowercase()))
        }
        _ => NodeHealth::Unknown,
    }
}

/// "valkey/valkey:8.1.1-alpine" → "8.1.1"; `None` for tags like "latest" or digests.
pub fn image_version(image: &str) -> Option<String> {
    let image = image.split('@').next()?;
    let (_, tag) = image.rsplit_once(':')?;
    if tag.contains('/') || !tag.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let version: String = tag
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    Some(version.trim_end_matches('.').to_string())
}

fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Attachment, KeyValuePair};

    fn cfg(host: Option<&str>) -> EcsConfig {
        EcsConfig {
            cluster: "orders".into(),
            services: vec![],
            container: Some("valkey".into()),
            host: host.map(str::to_string),
            port: 6379,
            tls: false,
        }
    }

    fn task(id: &str, ip: &str, status: &str) -> Task {
        Task::builder()
            .task_arn(format!("arn:aws:ecs:eu-west-1:1:task/orders/{id}"))
            .last_status(status)
            .availability_zone("eu-west-1a")
            .attachments(
                Attachment::builder()
                    .r#type("ElasticNetworkInterface")
                    .details(
                        KeyValuePair::builder()
                            .name("privateIPv4Address")
                            .value(ip)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn versions_come_from_image_tags() {
        assert_eq!(
            image_version("valkey/valkey:8.1.1-alpine").as_deref(),
            Some("8.1.1")
        );
        assert_eq!(
            image_version("123.dkr.ecr.eu-west-1.amazonaws.com:443/valkey:8.0").as_deref(),
            Some("8.0")
        );
        assert_eq!(image_version("valkey/valkey:latest"), None);
        assert_eq!(image_version("valkey/valkey"), None);
    }

    #[test]
    fn service_maps_to_one_shard_with_a_node_per_task() {
        let service = Service::builder()
            .service_name("valkey")
            .status("ACTIVE")
            .running_count(1)
            .desired_count(1)
            .enable_execute_command(true)
            .build();
        let mut running = task("abc123", "10.0.1.5", "RUNNING");
        running.enable_execute_command = true;
        let tasks = [running];
        let cache = ecs_cache(
            "prod",
            &cfg(Some("valkey.orders.local")),
            &service,
            &tasks,
            Some("valkey/valkey:8.1.1"),
            None,
        );
        assert_eq!(cache.kind, CacheKind::EcsService);
        assert_eq!(cache.engine_version, "8.1.1");
        assert_eq!(
            cache.endpoint.as_ref().map(|e| e.host.as_str()),
            Some("valkey.orders.local")
        );
        let node = &cache.shards[0].nodes[0];
        assert_eq!(
            (node.id.as_str(), node.host.as_str()),
            ("abc123", "10.0.1.5")
        );
        assert_eq!(node.role, NodeRole::Primary);
        assert!(node.health.is_up());
        assert_eq!(
            cache.ecs.as_ref().map(|e| e.service.as_str()),
            Some("valkey")
        );
    }

    #[test]
    fn without_a_host_a_running_task_ip_is_the_endpoint() {
        let service = Service::builder().service_name("valkey").build();
        let tasks = [
            task("a", "10.0.1.5", "STOPPED"),
            task("b", "10.0.2.6", "RUNNING"),
        ];
        let cache = ecs_cache("dev", &cfg(None), &service, &tasks, None, None);
        assert_eq!(
            cache.endpoint.as_ref().map(|e| e.host.as_str()),
            Some("10.0.2.6")
        );
        assert_eq!(
            cache.shards[0].nodes[0].health,
            NodeHealth::Down("task stopped".into())
        );
        assert_eq!(cache.shards[0].nodes[1].role, NodeRole::Unknown);
        assert_eq!(cache.engine_version, "unknown");
        assert!(cache.notes.iter().any(|n| n.starts_with("ECS Exec is off")));
    }

    #[test]
    fn a_cloud_map_name_is_the_endpoint_and_a_failed_lookup_falls_back_with_a_note() {
        let service = Service::builder().service_name("valkey").build();
        let tasks = [task("b", "10.0.2.6", "RUNNING")];
        let named = ServiceName::Dns("valkey.trigpointing.local".into());
        let cache = ecs_cache("dev", &cfg(None), &service, &tasks, None, Some(&named));
        assert_eq!(
            cache.endpoint.as_ref().map(|e| (e.host.as_str(), e.port)),
            Some(("valkey.trigpointing.local", 6379))
        );
        assert_eq!(
            cache.shards[0].nodes[0].host, "10.0.2.6",
            "nodes keep task addresses"
        );
        assert!(
            cache
                .notes
                .contains(&"endpoint from Cloud Map: valkey.trigpointing.local".to_string()),
            "{:?}",
            cache.notes
        );

        // A configured host wins over Cloud Map.
        let cache = ecs_cache(
            "dev",
            &cfg(Some("valkey.orders.local")),
            &service,
            &tasks,
            None,
            Some(&named),
        );
        assert_eq!(
            cache.endpoint.as_ref().map(|e| e.host.as_str()),
            Some("valkey.orders.local")
        );

        let failed = ServiceName::Unknown("AccessDenied: servicediscovery:GetService".into());
        let cache = ecs_cache("dev", &cfg(None), &service, &tasks, None, Some(&failed));
        assert_eq!(
            cache.endpoint.as_ref().map(|e| e.host.as_str()),
            Some("10.0.2.6")
        );
        assert!(
            cache.notes.iter().any(|n| n
                == "service-discovery name unknown (AccessDenied: servicediscovery:GetService): using task address 10.0.2.6, which changes with every deployment"),
            "{:?}",
            cache.notes
        );
    }

    #[test]
    fn bridge_mode_tasks_use_their_host_port_and_say_they_have_no_address() {
        use aws_sdk_ecs::types::{Container, NetworkBinding};
        let service = Service::builder().service_name("valkey").build();
        let bridged = Task::builder()
            .task_arn("arn:aws:ecs:eu-west-1:1:task/orders/c")
            .last_status("RUNNING")
            .containers(
                Container::builder()
                    .name("valkey")
                    .network_bindings(
                        NetworkBinding::builder()
                            .bind_ip("0.0.0.0")
                            .container_port(6379)
                            .host_port(32768)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let srv = ServiceName::SrvOnly("valkey.orders.local".into());
        let cache = ecs_cache("dev", &cfg(None), &service, &[bridged], None, Some(&srv));
        let node = &cache.shards[0].nodes[0];
        assert_eq!((node.host.as_str(), node.port), ("", 32768));
        assert_eq!(cache.endpoint, None, "no address to fall back to");
        assert!(
            cache
                .notes
                .iter()
                .any(|n| n.starts_with("task c has no address of its own")
                    && n.contains("port 32768")),
            "{:?}",
            cache.notes
        );
        assert!(
            cache
                .notes
                .iter()
                .any(|n| n.contains("valkey.orders.local has SRV records only")),
            "{:?}",
            cache.notes
        );
    }
}
