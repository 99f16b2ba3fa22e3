//! `cachedeck run` and `cachedeck runs resume`: progress on stderr, the result on stdout
//! (text or JSON, or a `ttl-audit` report as CSV/Markdown), and the exit codes of [`exit`].
//! With JSON, an audit's report fields (`total_keys`, `patterns`, …) sit at the top level
//! beside the run's.

mod progress;
mod reporter;

use super::{Format, exit};
use crate::estate::Estate;
use crate::runbook::actions;
use crate::runbook::catalog;
use crate::runbook::engine::{EngineError, ResumeInfo, RunReport, RunRequest, Target};
use crate::runbook::events::EventSender;
use crate::runbook::journal;
use crate::runbook::protect::Approval;
use crate::runbook::session;
use crate::runbook::validate::{self, Runbook};
use tokio_util::sync::CancellationToken;

/// A plan has no table: CSV and Markdown print it as text.
fn plan_format(f: Format) -> Format {
    match f {
        Format::Json => Format::Json,
        _ => Format::Text,
    }
}

fn tabular(f: Format) -> bool {
    matches!(f, Format::Csv | Format::Markdown)
}

/// The action whose report `--output csv|markdown` prints.
pub(crate) const TABLE_ACTION: &str = crate::runbook::actions::ttl_audit::NAME;

/// Everything `cachedeck run` takes.
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub runbook: String,
    pub env: String,
    pub cache: String,
    pub params: Vec<(String, String)>,
    pub approval: Approval,
    pub dry_run: bool,
    pub force_unlock: Option<String>,
    pub format: Format,
}

pub(super) fn fail(code: u8, message: impl std::fmt::Display) -> u8 {
    eprintln!(
        "error: failed to {}",
        crate::escape::escape_lines_capped(&message.to_string(), 2000)
    );
    code
}

/// Cancels `token` on Ctrl-C, SIGTERM or SIGHUP (the terminal or SSH session went away).
fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let on = |kind: tokio::signal::unix::SignalKind| async move {
            match tokio::signal::unix::signal(kind) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = on(tokio::signal::unix::SignalKind::terminate()) => {}
            _ = on(tokio::signal::unix::SignalKind::hangup()) => {}
        }
        // Not `eprintln!`: after SIGHUP the terminal may be gone, and a failed write must
        // not stop the clean shutdown.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"interrupt: stopping after the current call; the run can be resumed\n",
        );
        token.cancel();
    });
}

/// Looks the target up via [`session::target`]; `Err` is the exit code (already reported).
async fn target(
    estate: &Estate,
    runbook: &Runbook,
    env: &str,
    cache: &str,
    approval: &Approval,
) -> Result<Target, u8> {
    session::target(estate, runbook, env, cache, approval)
        .await
        .map_err(|e| fail(exit::for_kind(e.kind()), e))
}

async fn drive(
    format: Format,
    approval: Approval,
    work: impl FnOnce(
        EventSender,
        CancellationToken,
    ) -> futures::future::BoxFuture<'static, Result<RunReport, EngineError>>,
) -> u8 {
    let (tx, rx) = EventSender::channel();
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    let printer = tokio::spawn(reporter::stderr(rx, approval));
    let result = work(tx, cancel).await;
    let _ = printer.await;
    match result {
        Ok(report) => {
            reporter::print_report(&report, format);
            exit::for_state(report.state)
        }
        Err(e) => fail(exit::for_kind(e.kind()), e),
    }
}

/// `cachedeck run`.
pub async fn run(estate: &Estate, args: RunArgs) -> u8 {
    let registry = actions::builtin();
    let runbook = match catalog::find(&args.runbook, &registry) {
        Ok(r) => r,
        Err(e) => return fail(exit::BAD_INPUT, session::PrepareError::from(e)),
    };
    let params = match validate::bind_params(&runbook, &args.params) {
        Ok(p) => p,
        Err(e) => return fail(exit::BAD_INPUT, session::PrepareError::Params(e)),
    };
    let runbook = runbook.for_params(|name| params.flag(name));
    if tabular(args.format) && !runbook.steps.iter().any(|s| s.action == TABLE_ACTION) {
        return fail(
            exit::BAD_INPUT,
            format!(
                "print run `{}` as {}: only a runbook with a `{TABLE_ACTION}` step has a table to print; use --output text or json",
                runbook.name,
                if args.format == Format::Csv {
                    "csv"
                } else {
                    "markdown"
                }
            ),
        );
    }
    let approval = if args.dry_run {
        Approval {
            interactive: true,
            ..args.approval.clone()
        }
    } else {
        args.approval.clone()
    };
    let target = match target(estate, &runbook, &args.env, &args.cache, &approval).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    let engine = session::engine(estate);
    if args.dry_run {
        let plan = engine.plan(&runbook, &params, &target);
        reporter::print_plan(&plan, plan_format(args.format));
        return exit::OK;
    }
    let req = RunRequest {
        runbook,
        params,
        target,
        force_unlock: args.force_unlock.clone(),
    };
    drive(args.format, args.approval, move |tx, cancel| {
        Box::pin(async move { engine.start(req, tx, cancel).await })
    })
    .await
}

/// `cachedeck runs resume ID`.
pub async fn resume(
    estate: &Estate,
    run_id: &str,
    approval: Approval,
    force_unlock: Option<String>,
    format: Format,
) -> u8 {
    let dir = journal::runs_dir();
    let records = match journal::read(&dir, run_id) {
        Ok(r) => r,
        Err(e) => return fail(exit::BAD_INPUT, e),
    };
    let info = match ResumeInfo::from_records(run_id, &records) {
        Ok(i) => i,
        Err(why) => return fail(exit::BAD_INPUT, format!("resume run {run_id}: {why}")),
    };
    let registry = actions::builtin();
    let label = format!("{} (journaled text of run {run_id})", info.source);
    let runbook = match validate::parse(&label, &info.text, &registry) {
        Ok(r) if r.hash == info.hash => r,
        Ok(_) => {
            return fail(
                exit::BAD_INPUT,
                format!(
                    "resume run {run_id}: its journaled runbook does not match its recorded hash"
                ),
            );
        }
        Err(e) => return fail(exit::BAD_INPUT, format!("resume run {run_id}: {e}")),
    };
    let runbook = runbook.for_params(|name| info.params.get(name).and_then(|v| v.as_bool()));
    let target = match target(estate, &runbook, &info.env, &info.cache, &approval).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    let engine = session::engine(estate);
    drive(format, approval, move |tx, cancel| {
        Box::pin(async move {
            engine
                .resume(info, runbook, target, force_unlock, tx, cancel)
                .await
        })
    })
    .await
}
