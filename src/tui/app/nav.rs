//! Moving around: selection, drill-down, back, tabs.

use super::{App, Mode, Route, Tab};

impl App {
    pub(super) fn page(&self) -> isize {
        self.size.1.saturating_sub(8).max(1) as isize
    }

    pub(super) fn set_tab(&mut self, tab: Tab) {
        if matches!(self.route, Route::Cache { .. }) && tab != self.tab {
            // A filter belongs to the list it was typed for.
            self.filter.clear();
            self.tab = tab;
            self.scroll = 0;
        }
    }

    pub(super) fn goto(&mut self, route: Route) {
        if route != self.route {
            self.route = route;
            self.filter.clear();
            self.help = false;
            self.scroll = 0;
            match &self.route {
                Route::Envs => {}
                Route::Caches { .. } => self.selected[2] = 0,
                Route::Cache { .. } => self.tab = Tab::Stats,
            }
            self.clamp_selection();
        }
    }

    pub(super) fn enter(&mut self) {
        match &self.route {
            Route::Envs => {
                if let Some(env) = self.visible_envs().get(self.selected[0]) {
                    let env = env.env.name.clone();
                    self.selected[1] = 0;
                    self.goto(Route::Caches { env });
                }
            }
            Route::Caches { env } => {
                let env = env.clone();
                if let Some(cache) = self.visible_caches().get(self.selected[1]) {
                    let cache = cache.name.clone();
                    self.selected[2] = 0;
                    self.goto(Route::Cache { env, cache });
                }
            }
            Route::Cache { .. } => {}
        }
    }

    pub(super) fn back(&mut self) {
        if self.help {
            self.help = false;
        } else if self.mode != Mode::Normal {
            if matches!(self.mode, Mode::Filter(_)) {
                self.filter.clear();
            }
            self.mode = Mode::Normal;
        } else if !self.filter.is_empty() {
            self.filter.clear();
        } else {
            let up = match &self.route {
                Route::Envs => None,
                Route::Caches { .. } => Some(Route::Envs),
                Route::Cache { env, .. } => Some(Route::Caches { env: env.clone() }),
            };
            if let Some(route) = up {
                self.goto(route);
            }
        }
        self.clamp_selection();
    }

    /// Index of the list the arrow keys move in the current view; `None` means they scroll.
    pub(super) fn list_index(&self) -> Option<usize> {
        match (&self.route, self.tab) {
            (Route::Envs, _) => Some(0),
            (Route::Caches { .. }, _) => Some(1),
            (Route::Cache { .. }, Tab::Stats | Tab::Keyspace) => Some(2),
            (Route::Cache { .. }, _) => None,
        }
    }

    pub(super) fn list_len(&self) -> usize {
        match &self.route {
            Route::Envs => self.visible_envs().len(),
            Route::Caches { .. } => self.visible_caches().len(),
            Route::Cache { .. } => self.node_rows().len(),
        }
    }

    pub(super) fn move_selection(&mut self, by: isize) {
        match self.list_index() {
            Some(i) => {
                let len = self.list_len();
                let next = self.selected[i].saturating_add_signed(by);
                self.selected[i] = next.min(len.saturating_sub(1));
            }
            None => self.scroll = self.scroll.saturating_add_signed(by).min(10_000),
        }
    }

    pub(super) fn clamp_selection(&mut self) {
        if let Some(i) = self.list_index() {
            let len = self.list_len();
            self.selected[i] = self.selected[i].min(len.saturating_sub(1));
        }
    }
}
