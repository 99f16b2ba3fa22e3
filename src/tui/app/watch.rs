//! Keeping the background watches in step with the screen: one stats watch per environment
//! on screen, one detail watch per cache on screen, each with an id that tags its results.

use super::{App, Effect, Load, Route};
use crate::valkey::stats::{NodeKey, StatsBook};

impl App {
    /// Starts, replaces or stops the background watches so they match the screen.
    pub(super) fn reconcile_watches(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        let wanted = self.route_env().and_then(|env| {
            let caches = self.caches_of(&env)?.to_vec();
            let fingerprint = caches
                .iter()
                .flat_map(|c| {
                    c.nodes()
                        .map(|n| (c.name.clone(), n.id.clone(), n.host.clone(), n.port))
                })
                .collect();
            Some(((env.clone(), fingerprint), env, caches))
        });
        match wanted {
            Some((key, env, caches)) => {
                if self.stats_watch.as_ref().map(|(_, k)| k) != Some(&key) {
                    let id = self.next_id();
                    if self.stats_watch.as_ref().is_none_or(|(_, k)| k.0 != key.0) {
                        self.book = StatsBook::default();
                        self.queue_caches.clear();
                    }
                    self.watch_errors.clear();
                    for cache in &caches {
                        for node in cache.nodes() {
                            self.book.track(NodeKey {
                                env: env.clone(),
                                cache: cache.name.clone(),
                                node: node.id.clone(),
                            });
                        }
                    }
                    self.stats_watch = Some((id, key));
                    effects.push(Effect::WatchStats { id, env, caches });
                }
            }
            None => {
                if let Some((_, (env, _))) = self.stats_watch.take() {
                    // The envs list shows health from discovery: refresh the one just left
                    // so what polling saw there (a node down) is not forgotten.
                    self.book = StatsBook::default();
                    effects.push(Effect::StopStats);
                    effects.push(Effect::Discover(Some(env)));
                }
            }
        }
        let detail = match &self.route {
            Route::Cache { env, cache } => self
                .current_cache()
                .cloned()
                .map(|c| (env.clone(), cache.clone(), c)),
            _ => None,
        };
        match detail {
            Some((env, name, cache)) => {
                let same = self
                    .detail_watch
                    .as_ref()
                    .is_some_and(|(_, e, c)| *e == env && *c == name);
                if !same {
                    let id = self.next_id();
                    self.slowlog.clear();
                    self.events = Load::Loading;
                    self.snapshots = Load::Loading;
                    self.detail_watch = Some((id, env.clone(), name));
                    self.consumers = Load::Loading;
                    effects.push(Effect::LoadConsumers {
                        id,
                        env: env.clone(),
                        cache: Box::new(cache.clone()),
                    });
                    effects.push(Effect::WatchDetail {
                        id,
                        env,
                        cache: Box::new(cache),
                    });
                }
            }
            None => {
                if self.detail_watch.take().is_some() {
                    effects.push(Effect::StopDetail);
                }
            }
        }
        effects
    }

    pub(super) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The id of the running stats watch (tests use it to feed results).
    pub fn stats_watch_id(&self) -> Option<u64> {
        self.stats_watch.as_ref().map(|(id, _)| *id)
    }

    /// The id of the running detail watch.
    pub fn detail_watch_id(&self) -> Option<u64> {
        self.detail_watch.as_ref().map(|(id, ..)| *id)
    }
}
