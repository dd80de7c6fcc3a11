//! Finding the machine's installed server programs.

use std::path::{Path, PathBuf};

/// Looks `name` up on PATH, then in the sbin/bin directories a normal user's PATH often lacks
/// (Debian installs `mariadbd` in /usr/sbin).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH").map(|path| std::env::split_paths(&path).collect::<Vec<_>>()).unwrap_or_default();
    let system_dirs = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from);
    path_dirs.iter().chain(system_dirs.iter()).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
