//! Temporary folders named after their owner's pid, and the sweep that removes those whose
//! owner died without removing them (SIGKILL): they may hold a kubeconfig with a token.
//!
//! A folder is `<prefix>pid<PID>-<unique>` in the temporary directory; the sweep removes the
//! folders of `prefix` whose pid is not alive, owned by this user, and nothing else (an old
//! name without `pid`, a live owner's folder, a symlink and another user's folder stay).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A new folder name for this process: `<TMPDIR>/<prefix>pid<PID>-<uuid>` (not created).
pub fn owned_temp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "{prefix}pid{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

/// The owner pid in a folder name of `prefix`, if it is one.
fn owner(name: &str, prefix: &str) -> Option<i32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix("pid")?;
    let (pid, unique) = rest.split_once('-')?;
    if unique.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

/// Whether `pid` is a live process (a pid of another user's process counts as alive).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes the folders of `prefix` in `dir` whose owner is dead; returns how many.
pub fn sweep(dir: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    // SAFETY: plain syscall without arguments.
    let me = unsafe { libc::getuid() };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| owner(n, prefix)) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me || alive(pid) {
            continue;
        }
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// [`sweep`] in the temporary directory.
pub fn sweep_temp(prefix: &str) -> usize {
    sweep(&std::env::temp_dir(), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_reads_only_names_of_the_prefix_with_a_pid() {
        assert_eq!(owner("kjenv-x-pid12-abc", "kjenv-x-"), Some(12));
        assert_eq!(owner("kjenv-x-12345678-abc", "kjenv-x-"), None);
        assert_eq!(owner("kjenv-x-pid12-", "kjenv-x-"), None);
        assert_eq!(owner("kjenv-x-pid-abc", "kjenv-x-"), None);
        assert_eq!(owner("kjenv-x-pid0-abc", "kjenv-x-"), None);
        assert_eq!(owner("kjenv-x-pid+1-abc", "kjenv-x-"), None);
        assert_eq!(owner("kjenv-y-pid12-abc", "kjenv-x-"), None);
    }

    #[test]
    fn sweep_removes_dead_owners_folders_only() {
        let dir = std::env::temp_dir().join(format!("stale-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A pid beyond pid_max (4194304) is never alive.
        let dead = dir.join("kjenv-t-pid99999999-a");
        let live = dir.join(format!("kjenv-t-pid{}-b", std::process::id()));
        let old = dir.join("kjenv-t-1f389874-c");
        let file = dir.join("kjenv-t-pid99999998-d");
        for d in [&dead, &live, &old] {
            std::fs::create_dir_all(d.join("sub")).expect("dir");
        }
        std::fs::write(&file, "x").expect("file");
        assert_eq!(sweep(&dir, "kjenv-t-"), 1);
        assert!(!dead.exists());
        assert!(live.exists() && old.exists() && file.exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
