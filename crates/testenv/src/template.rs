//! Data directory templates: initialised once per machine, copied for every server.
//!
//! nextest runs every test in its own process and every test starts its own servers, so running
//! `mariadb-install-db`/`initdb` per server would dominate the suite. Instead the first process
//! to need a template builds it under `target/testenv-cache/<key>/` while holding an exclusive
//! lock on `<key>.lock`; every other process waits on that lock, then copies the finished tree.
//! The key names the server version and the layout revision below, so an upgraded server or a
//! changed initialisation never reuses a stale template.

use crate::paths;
use crate::server_process::run_to_completion;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the way templates are initialised changes.
pub const LAYOUT_REVISION: &str = "r1";

/// The file whose presence says a template is complete. It sits beside the data directory, not
/// in it, so it is never copied into a server.
const READY_MARKER: &str = "READY";

/// Returns the template data directory for `key`, building it with `build` if this machine has
/// none yet. `build` initialises a data directory wherever it likes (the server user must be able
/// to reach it) and returns its path; that tree is then copied into the cache. The guard it
/// returns (a temporary directory) is dropped once the copy is done.
pub fn template_data_dir<G>(key: &str, build: impl FnOnce() -> Result<(G, PathBuf), String>) -> PathBuf {
    let cache = paths::template_cache_dir();
    let entry = cache.join(key);
    let data = entry.join("data");
    if entry.join(READY_MARKER).exists() {
        return data;
    }
    std::fs::create_dir_all(&cache).unwrap_or_else(|err| panic!("cannot create the template cache {}: {err}", cache.display()));
    let lock_path = cache.join(format!("{key}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|err| panic!("cannot open the template lock {}: {err}", lock_path.display()));
    lock.lock().unwrap_or_else(|err| panic!("cannot lock {}: {err}", lock_path.display()));
    // Another process may have finished the template while this one waited for the lock.
    if entry.join(READY_MARKER).exists() {
        return data;
    }
    // A directory without the marker is the remains of a build that died half-way.
    if entry.exists() {
        std::fs::remove_dir_all(&entry).unwrap_or_else(|err| panic!("cannot remove the incomplete template {}: {err}", entry.display()));
    }
    let started = Instant::now();
    let (guard, built) = build().unwrap_or_else(|problem| panic!("cannot initialise the {key} template: {problem}"));
    std::fs::create_dir_all(&entry).unwrap_or_else(|err| panic!("cannot create {}: {err}", entry.display()));
    copy_tree(&built, &data).unwrap_or_else(|problem| panic!("cannot store the {key} template: {problem}"));
    drop(guard);
    std::fs::write(entry.join(READY_MARKER), format!("built in {:?}\n", started.elapsed())).unwrap_or_else(|err| panic!("cannot mark the template {} ready: {err}", entry.display()));
    eprintln!("testenv: built the {key} template in {:?} ({})", started.elapsed(), entry.display());
    data
}

/// Copies a directory tree preserving modes and, when run as root, owners (PostgreSQL's data
/// directory belongs to the postgres user and must stay 0700).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let mut command = Command::new("cp");
    command.arg("-a").arg(from).arg(to);
    run_to_completion(command).map(|_| ())
}

/// A cache key component made of the server's version line: only characters safe in a file name.
pub fn version_key(version_line: &str) -> String {
    let key: String = version_line
        .split_whitespace()
        .find(|word| word.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or("unknown")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    key.trim_end_matches(',').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn version_keys_are_file_name_safe() {
        assert_eq!(version_key("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)"), "10.11.19-MariaDB-0_deb12u1");
        assert_eq!(version_key("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"), "15.20");
        assert_eq!(version_key("no digits here"), "unknown");
    }

    /// Concurrent test processes (here: threads with their own lock handles, which flock treats
    /// the same way) build a template once; everyone gets the finished tree.
    #[test]
    fn concurrent_callers_build_a_template_once() {
        let key = format!("selftest-{}", crate::random::hex(6));
        let builds = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (key, builds) = (key.clone(), builds.clone());
                std::thread::spawn(move || {
                    template_data_dir(&key, || {
                        builds.fetch_add(1, Ordering::SeqCst);
                        let scratch = tempfile::tempdir().map_err(|err| err.to_string())?;
                        let data = scratch.path().join("data");
                        std::fs::create_dir(&data).map_err(|err| err.to_string())?;
                        // Slow enough that the other callers arrive while it builds.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        std::fs::write(data.join("content"), "built").map_err(|err| err.to_string())?;
                        Ok((scratch, data))
                    })
                })
            })
            .collect();
        let dirs: Vec<PathBuf> = callers.into_iter().map(|caller| caller.join().expect("caller")).collect();
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        for dir in &dirs {
            assert_eq!(std::fs::read_to_string(dir.join("content")).unwrap(), "built");
        }
        let entry = paths::template_cache_dir().join(&key);
        std::fs::remove_dir_all(&entry).unwrap();
        std::fs::remove_file(paths::template_cache_dir().join(format!("{key}.lock"))).unwrap();
    }
}
