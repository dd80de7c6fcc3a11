//! Who the servers run as. CI runs as root, and PostgreSQL refuses to run as root, so as root it
//! runs as the `postgres` system user that the Debian package creates; as a normal user every
//! server simply runs as that user.

use std::io;
use std::path::Path;

pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn effective_uid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::geteuid() }
}

/// A system account a server process is switched to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl SystemUser {
    /// Looks the account up through NSS (getpwnam_r), as `id NAME` would.
    pub fn lookup(name: &str) -> Option<SystemUser> {
        let c_name = std::ffi::CString::new(name).ok()?;
        let mut buffer = vec![0 as libc::c_char; 16 * 1024];
        // SAFETY: passwd is plain old data; getpwnam_r fills it and points its strings into `buffer`.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call and the buffer length is exact.
        let status = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut result) };
        if status != 0 || result.is_null() {
            return None;
        }
        Some(SystemUser { name: name.to_string(), uid: entry.pw_uid, gid: entry.pw_gid })
    }

    /// Hands `path` to this user (the link itself, never its target).
    pub fn chown(&self, path: &Path) -> io::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
    }
}
