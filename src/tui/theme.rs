//! Colours and text styles of the TUI, from `assets/theme.toml` (compiled in) or the user's
//! `theme.toml` beside the config file. `NO_COLOR` turns every colour off and keeps only
//! bold/reverse, so states still read on a monochrome terminal.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::path::Path;
use std::str::FromStr;

/// The theme shipped with cachedeck.
pub const DEFAULT_THEME: &str = include_str!("../../assets/theme.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    colors: Colors,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Colors {
    text: String,
    muted: String,
    border: String,
    title: String,
    selected_fg: String,
    selected_bg: String,
    good: String,
    warn: String,
    bad: String,
    chart: String,
    read_only: String,
    confirm: String,
    open: String,
}

/// Why a theme file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("parse theme {path}: {message}")]
    Parse { path: String, message: String },
    #[error(
        "parse theme {path}: `{value}` is not a colour; use a name such as light-blue or #rrggbb"
    )]
    Color { path: String, value: String },
}

/// Ready-made styles for every role a piece of text can play.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub text: Style,
    pub muted: Style,
    pub border: Style,
    pub title: Style,
    pub header: Style,
    pub selected: Style,
    pub good: Style,
    pub warn: Style,
    pub bad: Style,
    pub chart: Style,
    pub read_only: Style,
    pub confirm: Style,
    pub open: Style,
}

impl Theme {
    /// The compiled-in theme, coloured unless `no_color`.
    pub fn builtin(no_color: bool) -> Theme {
        // The shipped file is validated by a test; fall back to monochrome rather than panic.
        Theme::parse("assets/theme.toml", DEFAULT_THEME, no_color)
            .unwrap_or_else(|_| Theme::monochrome())
    }

    /// The user's theme file when it exists and parses, else the built-in one. A broken
    /// user file is logged, not fatal: a colour typo must not keep anyone from their caches.
    pub fn load(user_file: &Path, no_color: bool) -> Theme {
        match std::fs::read_to_string(user_file) {
            Ok(text) => match Theme::parse(&user_file.display().to_string(), &text, no_color) {
                Ok(theme) => theme,
                Err(e) => {
                    tracing::warn!("failed to {e}; using the built-in theme");
                    Theme::builtin(no_color)
                }
            },
            Err(_) => Theme::builtin(no_color),
        }
    }

    /// Parses theme TOML; `path` only names the file in errors.
    pub fn parse(path: &str, text: &str, no_color: bool) -> Result<Theme, ThemeError> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| ThemeError::Parse {
            path: path.to_string(),
            message: e.message().to_string(),
        })?;
        let c = &file.colors;
        let color = |value: &str| {
            Color::from_str(value).map_err(|_| ThemeError::Color {
                path: path.to_string(),
                value: value.to_string(),
            })
        };
        let theme = Theme {
            text: Style::new().fg(color(&c.text)?),
            muted: Style::new().fg(color(&c.muted)?),
            border: Style::new().fg(color(&c.border)?),
            title: Style::new()
                .fg(color(&c.title)?)
                .add_modifier(Modifier::BOLD),
            header: Style::new().add_modifier(Modifier::BOLD),
            selected: Style::new()
                .fg(color(&c.selected_fg)?)
                .bg(color(&c.selected_bg)?)
                .add_modifier(Modifier::BOLD),
            good: Style::new().fg(color(&c.good)?),
            warn: Style::new().fg(color(&c.warn)?),
            bad: Style::new().fg(color(&c.bad)?).add_modifier(Modifier::BOLD),
            chart: Style::new().fg(color(&c.chart)?),
            read_only: Style::new()
                .fg(color(&c.read_only)?)
                .add_modifier(Modifier::BOLD | Modifier::REVERSED),
            confirm: Style::new().fg(color(&c.confirm)?),
            open: Style::new().fg(color(&c.open)?),
        };
        Ok(if no_color { Theme::monochrome() } else { theme })
    }

    /// No colours at all: bold for emphasis and alerts, reverse video for the selection.
    pub fn monochrome() -> Theme {
        let plain = Style::new();
        let bold = Style::new().add_modifier(Modifier::BOLD);
        Theme {
            text: plain,
            muted: plain,
            border: plain,
            title: bold,
            header: bold,
            selected: Style::new().add_modifier(Modifier::REVERSED),
            good: plain,
            warn: bold,
            bad: bold,
            chart: plain,
            read_only: Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            confirm: bold,
            open: plain,
        }
    }
}

/// Whether `NO_COLOR` asks for no colour (<https://no-color.org>: set and not empty).
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_theme_parses_and_has_colours() {
        let theme = Theme::parse("assets/theme.toml", DEFAULT_THEME, false).expect("valid theme");
        assert_eq!(theme.bad.fg, Some(Color::Red));
        assert_eq!(theme.chart.fg, Some(Color::LightBlue));
        assert_ne!(theme, Theme::monochrome());
    }

    #[test]
    fn no_color_drops_every_colour() {
        let theme = Theme::parse("t", DEFAULT_THEME, true).expect("valid theme");
        for style in [theme.text, theme.bad, theme.selected, theme.chart] {
            assert_eq!(style.fg, None);
            assert_eq!(style.bg, None);
        }
    }

    #[test]
    fn bad_colour_names_the_value() {
        let text = DEFAULT_THEME.replace("\"red\"", "\"reddish\"");
        let err = Theme::parse("t.toml", &text, false).expect_err("must fail");
        assert!(
            err.to_string().contains("`reddish` is not a colour"),
            "{err}"
        );
    }
}
