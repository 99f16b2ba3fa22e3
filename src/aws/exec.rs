//! ECS Exec through aws-sdk-ecs: the tasks of a service with what ECS Exec needs of them
//! (ListTasks + DescribeTasks), and ExecuteCommand with its errors explained in one line.
//! Data keys for KMS-encrypted sessions come from aws-sdk-kms (`ecsexec::crypto`).

use super::AwsControlPlane;
use crate::controlplane::{ControlPlaneError, ExecCommand, ExecContainer, ExecStarted, ExecTask};
use crate::ecsexec::client::SessionInfo;
use aws_sdk_ecs::types::{DesiredStatus, Task};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use secrecy::SecretString;

/// One line for an ExecuteCommand failure a person can act on.
pub fn explain(code: &str, message: &str) -> Option<String> {
    let m = crate::escape::escape(message);
    Some(match code {
        "TargetNotConnectedException" => format!(
            "the task's ExecuteCommandAgent is not connected to Session Manager ({m}); check that the task role allows ssmmessages:CreateControlChannel, CreateDataChannel, OpenControlChannel and OpenDataChannel, and that the task can reach ssmmessages (NAT or VPC endpoint)"
        ),
        "AccessDeniedException" => format!(
            "access denied ({m}); the caller needs ecs:ExecuteCommand on the cluster and task (and kms:GenerateDataKey when the cluster encrypts exec sessions)"
        ),
        "InvalidParameterException" if message.contains("execute command") => format!(
            "{m}; turn it on with UpdateService --enable-execute-command and a new deployment (--force-new-deployment), then exec into a new task"
        ),
        "ClusterNotFoundException" => format!("cluster not found ({m})"),
        _ => return None,
    })
}

impl AwsControlPlane {
    pub(super) async fn list_exec_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<ExecTask>, ControlPlaneError> {
        let list = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(DesiredStatus::Running)
            .send()
            .await
            .map_err(|e| self.fail("ListTasks", &e))?;
        let arns = list.task_arns().to_vec();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        self.describe_exec_tasks(cluster, arns).await
    }

    async fn describe_exec_tasks(
        &self,
        cluster: &str,
        tasks: Vec<String>,
    ) -> Result<Vec<ExecTask>, ControlPlaneError> {
        let out = self
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(tasks))
            .send()
            .await
            .map_err(|e| self.fail("DescribeTasks", &e))?;
        Ok(out.tasks().iter().map(|t| exec_task(cluster, t)).collect())
    }

    pub(super) async fn exec(&self, req: ExecCommand) -> Result<ExecStarted, ControlPlaneError> {
        let mut call = self
            .ecs
            .execute_command()
            .cluster(&req.cluster)
            .task(&req.task)
            .interactive(true)
            .command(&req.command);
        if let Some(c) = &req.container {
            call = call.container(c);
        }
        let out = call.send().await.map_err(|e| {
            let code = e.code().unwrap_or_default().to_string();
            let message = e.message().unwrap_or_default().to_string();
            match explain(&code, &message) {
                Some(detail) if code == "AccessDeniedException" => {
                    ControlPlaneError::AccessDenied {
                        operation: "ExecuteCommand".into(),
                        detail,
                    }
                }
                Some(detail) => ControlPlaneError::InvalidState {
                    operation: "ExecuteCommand".into(),
                    detail,
                },
                None => self.fail("ExecuteCommand", &e),
            }
        })?;
        let session = out.session().ok_or_else(|| ControlPlaneError::Service {
            operation: "ExecuteCommand".into(),
            detail: "the response has no session".into(),
        })?;
        let task_arn = out.task_arn().unwrap_or(&req.task).to_string();
        let container_name = out
            .container_name()
            .or(req.container.as_deref())
            .unwrap_or_default()
            .to_string();
        // The encryption context names the target as the AWS CLI does:
        // ecs:<cluster>_<task id>_<container runtime id>.
        let runtime = self
            .describe_exec_tasks(&req.cluster, vec![task_arn.clone()])
            .await
            .ok()
            .and_then(|tasks| tasks.into_iter().next())
            .and_then(|t| {
                t.containers
                    .into_iter()
                    .find(|c| c.name == container_name)
                    .and_then(|c| c.runtime_id)
            })
            .unwrap_or_default();
        let cluster_name = last_segment(out.cluster_arn().unwrap_or(&req.cluster));
        let target = format!("ecs:{cluster_name}_{}_{runtime}", last_segment(&task_arn));
        Ok(ExecStarted {
            task_arn,
            container_name,
            session: SessionInfo {
                session_id: session.session_id().unwrap_or_default().to_string(),
                stream_url: session.stream_url().unwrap_or_default().to_string(),
                token: SecretString::from(session.token_value().unwrap_or_default().to_string()),
                target,
            },
        })
    }
}

/// DescribeTasks' task → [`ExecTask`].
pub fn exec_task(cluster: &str, t: &Task) -> ExecTask {
    let arn = t.task_arn().unwrap_or_default().to_string();
    ExecTask {
        cluster: cluster.to_string(),
        task_id: last_segment(&arn).to_string(),
        task_arn: arn,
        last_status: t.last_status().unwrap_or_default().to_string(),
        enable_execute_command: t.enable_execute_command(),
        launch_type: t.launch_type().map(|l| l.as_str().to_string()),
        platform_version: t.platform_version().map(str::to_string),
        task_definition_arn: t.task_definition_arn().unwrap_or_default().to_string(),
        containers: t
            .containers()
            .iter()
            .map(|c| ExecContainer {
                name: c.name().unwrap_or_default().to_string(),
                runtime_id: c.runtime_id().map(str::to_string),
                exec_agent: c
                    .managed_agents()
                    .iter()
                    .find(|a| a.name().map(|n| n.as_str()) == Some("ExecuteCommandAgent"))
                    .and_then(|a| a.last_status().map(str::to_string)),
            })
            .collect(),
    }
}

fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
