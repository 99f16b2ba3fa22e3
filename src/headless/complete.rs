//! `cachedeck completions SHELL` and `cachedeck man`: the shell completion script
//! (clap_complete) and the manual page (clap_mangen), both generated from the clap
//! definitions in `cli`, so they always match the commands this binary has.

use crate::cli::{Cli, Shell};
use clap::CommandFactory;
use std::io::Write;

/// Writes the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "cachedeck", out);
}

/// Writes the manual page: the top-level page (synopsis, options, the list of commands,
/// version), then a COMMANDS section with every command's synopsis, description and options
/// (sub-commands too), so `man cachedeck` documents the whole command line.
pub fn man(out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        command_section(sub, "cachedeck", out)?;
    }
    Ok(())
}

/// One command as a `.SS` subsection: the sections clap_mangen renders for it, without their
/// `.SH` headings (the subsection heading names the command).
fn command_section(cmd: &clap::Command, parent: &str, out: &mut dyn Write) -> std::io::Result<()> {
    let name = format!("{parent} {}", cmd.get_name());
    let man = clap_mangen::Man::new(cmd.clone().name(name.clone()).bin_name(name.clone()));
    let mut body = Vec::new();
    man.render_synopsis_section(&mut body)?;
    man.render_description_section(&mut body)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut body)?;
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        man.render_extra_section(&mut body)?;
    }
    writeln!(out, ".SS \"{name}\"")?;
    let body = String::from_utf8_lossy(&body);
    for line in body.lines().filter(|l| !l.starts_with(".SH ")) {
        writeln!(out, "{line}")?;
    }
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        command_section(sub, &name, out)?;
    }
    Ok(())
}
