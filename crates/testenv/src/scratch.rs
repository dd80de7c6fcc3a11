//! Temporary directories for servers and functions, and the clean-up of those that a killed test
//! process left behind.
//!
//! Drop removes a directory, but a test process killed by a signal (Ctrl-C, a runner's timeout)
//! runs no Drop, and a server's copy of its data directory is 20-40 MiB. So every directory
//! records the pid of the test process that owns it, and the first directory a test process
//! creates sweeps away those whose owner no longer exists.

use std::path::Path;
use std::sync::Once;
use tempfile::TempDir;

const PREFIX: &str = "testenv-";
const OWNER_FILE: &str = ".testenv-owner-pid";

/// A new `testenv-<kind>-XXXXXX` directory in the system temporary directory, owned by this
/// process.
pub fn scratch_dir(kind: &str) -> TempDir {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(remove_orphans);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{kind}-"))
        .tempdir()
        .unwrap_or_else(|err| panic!("cannot create a temporary directory in {}: {err}", std::env::temp_dir().display()));
    std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string()).unwrap_or_else(|err| panic!("cannot write into {}: {err}", dir.path().display()));
    dir
}

/// Removes the testenv directories whose owning process is gone. A directory without an owner
/// file is left alone (it may be being created right now); one that cannot be removed (another
/// user's) too.
fn remove_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry.file_name().to_str().is_some_and(|name| name.starts_with(PREFIX));
        if is_ours && entry.file_type().is_ok_and(|kind| kind.is_dir()) && owner_is_gone(&path) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn owner_is_gone(dir: &Path) -> bool {
    let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else { return false };
    let Ok(pid) = owner.trim().parse::<u32>() else { return false };
    !Path::new(&format!("/proc/{pid}")).exists()
}
