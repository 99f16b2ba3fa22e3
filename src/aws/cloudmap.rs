//! The service-discovery (Cloud Map) name of an ECS service: the stable name clients use
//! (seed 004's `valkey.trigpointing.local`) instead of a task address that changes with
//! every deployment. ECS lists the service's registries (`serviceRegistries[].registryArn`);
//! Cloud Map's GetService gives the service name, its namespace and its DNS record types,
//! GetNamespace the namespace's name.

use super::AwsControlPlane;
use aws_sdk_servicediscovery::types::{NamespaceType, RecordType};

/// What Cloud Map says about a service's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceName {
    /// `valkey.trigpointing.local`, resolving to the tasks' addresses (A / AAAA records).
    Dns(String),
    /// A name with SRV records only (bridge or host network mode): it resolves through SRV,
    /// which Valkey clients do not read, so it cannot stand in for a host.
    SrvOnly(String),
    /// The registry is not a DNS name (an HTTP namespace: API discovery only).
    NotDns(String),
    /// The lookup failed; why (permissions, a deleted service).
    Unknown(String),
}

impl AwsControlPlane {
    /// The name of the first registry of a service, `None` when it has none. Answers are
    /// kept for the plane's life (Cloud Map names cannot change); failures are not.
    pub(super) async fn service_name(&self, registry_arn: &str) -> ServiceName {
        if let Some(known) = self.memo.name(registry_arn) {
            return known;
        }
        let found = self.lookup_service_name(registry_arn).await;
        if !matches!(found, ServiceName::Unknown(_)) {
            self.memo.keep_name(registry_arn, found.clone());
        }
        found
    }

    async fn lookup_service_name(&self, registry_arn: &str) -> ServiceName {
        let Some(client) = &self.servicediscovery else {
            return ServiceName::Unknown("no Cloud Map client".into());
        };
        let Some(id) = registry_arn.rsplit_once("service/").map(|(_, id)| id) else {
            return ServiceName::Unknown(format!(
                "`{registry_arn}` is not a Cloud Map service ARN"
            ));
        };
        let service =
            match tokio::time::timeout(self.timeout(), client.get_service().id(id).send()).await {
                Ok(Ok(out)) => out.service,
                Ok(Err(e)) => return ServiceName::Unknown(self.fail("GetService", &e).to_string()),
                Err(_) => {
                    return ServiceName::Unknown(format!(
                        "GetService: no answer within {:?}",
                        self.timeout()
                    ));
                }
            };
        let Some(service) = service else {
            return ServiceName::Unknown("GetService returned no service".into());
        };
        let (Some(name), Some(namespace_id)) = (service.name(), service.namespace_id()) else {
            return ServiceName::Unknown("GetService returned no name or namespace".into());
        };
        let namespace = match tokio::time::timeout(
            self.timeout(),
            client.get_namespace().id(namespace_id).send(),
        )
        .await
        {
            Ok(Ok(out)) => out.namespace,
            Ok(Err(e)) => return ServiceName::Unknown(self.fail("GetNamespace", &e).to_string()),
            Err(_) => {
                return ServiceName::Unknown(format!(
                    "GetNamespace: no answer within {:?}",
                    self.timeout()
                ));
            }
        };
        let Some(namespace) = namespace else {
            return ServiceName::Unknown("GetNamespace returned no namespace".into());
        };
        let Some(domain) = namespace.name() else {
            return ServiceName::Unknown("GetNamespace returned no name".into());
        };
        let full = format!("{name}.{domain}");
        if namespace.r#type() == Some(&NamespaceType::Http) {
            return ServiceName::NotDns(full);
        }
        let records: Vec<&RecordType> = service
            .dns_config()
            .map(|c| c.dns_records().iter().map(|r| r.r#type()).collect())
            .unwrap_or_default();
        let addresses = records
            .iter()
            .any(|t| matches!(t, RecordType::A | RecordType::Aaaa | RecordType::Cname));
        if records.is_empty() || addresses {
            ServiceName::Dns(full)
        } else {
            ServiceName::SrvOnly(full)
        }
    }
}
