//! Records the git commit the binary is built from, for `cachedeck --version`
//! (`CACHEDECK_GIT_COMMIT`): `git rev-parse --short=12 HEAD`, or `unknown commit` when there
//! is no git checkout (a source tarball) or no git. `CACHEDECK_GIT_COMMIT` set in the build's environment wins (packagers).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=CACHEDECK_GIT_COMMIT");
    let commit = match std::env::var("CACHEDECK_GIT_COMMIT") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_string(),
        _ => from_git().unwrap_or_else(|| "unknown commit".to_string()),
    };
    println!("cargo:rustc-env=CACHEDECK_GIT_COMMIT={commit}");
}

fn from_git() -> Option<String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    // Only this project's own checkout counts, not a repository the source happens to sit in.
    let top = git(&["-C", &manifest, "rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != Path::new(&manifest).canonicalize().ok()? {
        return None;
    }
    let commit = git(&["-C", &manifest, "rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves (a commit, a checkout) or the branch it names does.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["-C", &manifest, "symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["-C", &manifest, "rev-parse", "--git-path", &name]) {
            let path = Path::new(&manifest).join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}
