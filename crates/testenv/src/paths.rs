//! Where things live: the workspace root, cargo's target directory, the built binaries and the
//! template cache.

use std::path::{Path, PathBuf};

/// The workspace root: the nearest ancestor of this crate whose Cargo.toml declares `[workspace]`.
/// Found from the compile-time manifest directory, so it names the checkout the tests were built
/// from, whatever the current directory of the test process is.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|manifest| manifest.contains("[workspace]")))
        .unwrap_or_else(|| panic!("no workspace Cargo.toml above {}", manifest_dir.display()))
        .to_path_buf()
}

/// Cargo's target directory. Preferably derived from the running executable (cargo marks the
/// target directory with CACHEDIR.TAG), which honours `CARGO_TARGET_DIR` and `--target-dir`
/// without having to interpret them; then `CARGO_TARGET_DIR`; then `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = current_exe_dir().and_then(|dir| dir.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf)) {
        return dir;
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The directory holding the binaries of the profile the tests were built with (`target/debug`).
/// A test executable lives in `<profile>/deps`; a binary or example in `<profile>` or below it.
pub fn profile_dir() -> PathBuf {
    if let Some(dir) = current_exe_dir() {
        if dir.file_name().is_some_and(|name| name == "deps" || name == "examples")
            && let Some(parent) = dir.parent()
        {
            return parent.to_path_buf();
        }
        if dir.ancestors().any(|d| d.join("CACHEDIR.TAG").is_file()) {
            return dir;
        }
    }
    target_dir().join("debug")
}

/// Data directory templates, built once per machine and copied for every server.
pub fn template_cache_dir() -> PathBuf {
    target_dir().join("testenv-cache")
}

fn current_exe_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.parent().map(Path::to_path_buf)
}
