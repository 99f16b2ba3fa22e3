//! The `:` commands: `:envs`, `:caches [ENV]`, `:cache [ENV/]NAME`, `:run [NAME]`, `:help`,
//! `:quit`.

use super::App;
use crate::tui::action::{Action, Route};

/// What `:` understands, for the help overlay and error messages.
pub const COMMANDS: &[(&str, &str)] = &[
    (":envs", "list environments"),
    (
        ":caches [ENV]",
        "list the caches of ENV (default: the current one)",
    ),
    (
        ":cache [ENV/]NAME",
        "open a cache (current environment first)",
    ),
    (":run [NAME]", "run a runbook here (NAME: its form)"),
    (":help", "show the keys"),
    (":quit", "leave cachedeck (also :q)"),
];

/// Turns a typed command into an action, or says what is wrong with it.
pub fn parse_command(text: &str, app: &App) -> Result<Action, String> {
    let mut words = text.split_whitespace();
    let Some(verb) = words.next() else {
        return Err("type a command: :envs, :caches ENV, :cache NAME, :quit".into());
    };
    let arg = words.next();
    if words.next().is_some() {
        return Err(format!("`:{verb}` takes at most one argument"));
    }
    match (verb, arg) {
        ("q" | "q!" | "quit" | "exit", None) => Ok(Action::Quit),
        ("help" | "h", None) => Ok(Action::ToggleHelp),
        ("run" | "x", name) => Ok(Action::OpenRunbooks(name.map(str::to_string))),
        ("envs" | "env" | "environments" | "ctx", None) => Ok(Action::Goto(Route::Envs)),
        ("caches" | "cc", Some(env)) => {
            let env = find_env(app, env)?;
            Ok(Action::Goto(Route::Caches { env }))
        }
        ("caches" | "cc", None) => match app.route_env() {
            Some(env) => Ok(Action::Goto(Route::Caches { env })),
            None => Err("name the environment: :caches ENV".into()),
        },
        ("cache" | "c", Some(name)) => find_cache(app, name),
        ("cache" | "c", None) => Err("name the cache: :cache NAME".into()),
        (verb, _) => Err(format!(
            "unknown command `:{verb}`; try :envs, :caches ENV, :cache NAME, :quit"
        )),
    }
}

fn find_env(app: &App, name: &str) -> Result<String, String> {
    if app.env_entry(name).is_some() {
        return Ok(name.to_string());
    }
    // A unique prefix is enough: `:caches prod` for `sandbox-prod` is what people type.
    let hits: Vec<&str> = app
        .envs
        .iter()
        .map(|e| e.env.name.as_str())
        .filter(|n| n.starts_with(name) || n.ends_with(name))
        .collect();
    match hits.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "no environment `{name}`; known: {}",
            app.envs
                .iter()
                .map(|e| e.env.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        many => Err(format!(
            "`{name}` matches {}; be more precise",
            many.join(", ")
        )),
    }
}

fn find_cache(app: &App, spec: &str) -> Result<Action, String> {
    let (env_hint, name) = match spec.split_once('/') {
        Some((env, name)) => (Some(find_env(app, env)?), name),
        None => (None, spec),
    };
    // The current environment first, then every other one that has loaded.
    let mut order: Vec<String> = env_hint.into_iter().collect();
    if order.is_empty() {
        order.extend(app.route_env());
        order.extend(app.envs.iter().map(|e| e.env.name.clone()));
    }
    for env in &order {
        if app
            .caches_of(env)
            .is_some_and(|caches| caches.iter().any(|c| c.name == name))
        {
            return Ok(Action::Goto(Route::Cache {
                env: env.clone(),
                cache: name.to_string(),
            }));
        }
    }
    Err(format!(
        "no cache `{name}` in {}; :caches ENV lists them",
        if order.len() == 1 {
            format!("`{}`", order[0])
        } else {
            "any loaded environment".into()
        }
    ))
}
