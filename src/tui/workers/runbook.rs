//! Runbook work for the TUI: listing the runbooks that apply to a cache, and running one.
//! A run is prepared by [`session::prepare`] from the runbook the picker checked and the cache
//! the app holds (protection and `applies_to` checked again, nothing re-read) and carried out
//! by the same engine as the headless runner's; its events are forwarded as actions, so the TUI is one
//! more reporter of them. Confirmations are asked interactively (the app answers them).

use crate::domain::Cache;
use crate::estate::Estate;
use crate::runbook::actions;
use crate::runbook::engine::Engine;
use crate::runbook::events::EventSender;
use crate::runbook::protect::Approval;
use crate::runbook::session;
use crate::runbook::validate::Runbook;
use crate::tui::action::Action;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A run the app asked for.
pub struct Start {
    pub run: u64,
    pub env: String,
    pub cache: Cache,
    pub runbook: Runbook,
    pub params: Vec<(String, String)>,
    pub dry_run: bool,
}

/// Lists the runbooks that apply to `cache` (user runbooks are files: read off the loop).
pub async fn load_runbooks(env: String, cache: Cache, tx: mpsc::Sender<Action>) {
    let name = cache.name.clone();
    let result =
        tokio::task::spawn_blocking(move || session::applicable(&actions::builtin(), &cache))
            .await
            .map_err(|e| format!("list runbooks: {e}"));
    let _ = tx
        .send(Action::Runbooks {
            env,
            cache: name,
            result,
        })
        .await;
}

/// Prepares, then plans or runs; always ends with `RunEnded`.
pub async fn run(
    estate: Arc<Estate>,
    engine: Engine,
    start: Start,
    cancel: CancellationToken,
    tx: mpsc::Sender<Action>,
) {
    let id = start.run;
    let approval = Approval {
        interactive: true,
        ..Approval::default()
    };
    let prepared = session::prepare(
        &estate,
        &start.env,
        start.runbook,
        start.cache,
        &start.params,
        &approval,
    );
    let req = match prepared {
        Ok(req) => req,
        Err(e) => {
            let error = Some(format!("failed to {e}"));
            let _ = tx.send(Action::RunEnded { run: id, error }).await;
            return;
        }
    };
    if start.dry_run {
        let plan = engine.plan(&req.runbook, &req.params, &req.target);
        let _ = tx
            .send(Action::RunPlanned {
                run: id,
                result: Ok(Box::new(plan)),
            })
            .await;
        let _ = tx
            .send(Action::RunEnded {
                run: id,
                error: None,
            })
            .await;
        return;
    }
    let (events, mut rx) = EventSender::channel();
    let forward = {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let action = Action::RunEvent {
                    run: id,
                    event: Box::new(event),
                };
                if tx.send(action).await.is_err() {
                    return;
                }
            }
        })
    };
    let result = engine.start(req, events, cancel).await;
    // Every event reaches the app before the end does (bounded: an action that kept a
    // sender alive must not hold the end back).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), forward).await;
    let error = result.err().map(|e| format!("failed to {e}"));
    let _ = tx.send(Action::RunEnded { run: id, error }).await;
}
