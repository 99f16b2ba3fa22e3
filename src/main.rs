//! The cachedeck binary: parses the command line and hands over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cachedeck::cli::Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        _ => {
            eprintln!("cachedeck: nothing here yet");
            ExitCode::from(2)
        }
    }
}
