//! One writer per run: an OS advisory lock on the run directory, held while `fit` trains.
//!
//! Two processes training into one directory would both append to the logs and race on
//! the checkpoint temp directories. `RUN_DIR/.lock` is locked with `File::try_lock` (std,
//! `flock` on Unix): the OS releases it when the holder exits, even on SIGKILL, so a
//! killed run never leaves a stale lock behind. The file also says who holds it (pid,
//! host, since when) so that a refused process can name the holder. The file itself
//! stays: deleting it on release would let a waiting process lock an unlinked inode.
//! Readers (`inspect`, `report`) take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The lock file's name inside the run directory.
pub const LOCK_FILE: &str = ".lock";

/// Who holds a run directory's lock, as written into `RUN_DIR/.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The holding process's id.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// When it took the lock (RFC 3339, UTC).
    pub since: String,
}

impl LockHolder {
    /// Whether the holder may still be running: a process of another host is taken to be;
    /// on this host, its pid must exist (`/proc` where there is one).
    fn is_live(&self) -> bool {
        if self.host != host_name() || !Path::new("/proc/self").exists() {
            return true;
        }
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {} since {}",
            self.pid, self.host, self.since
        )
    }
}

/// Who holds the lock at `path`, as the refusal names it. The winner writes its record
/// just after taking the lock, so for a moment the file may be empty or still name the
/// previous holder (a process that has exited): it is read again for up to ~100 ms until
/// it names a live process.
fn read_holder(path: &Path) -> String {
    let mut last = "another process (it has not written its name yet)".to_string();
    for _ in 0..20 {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                if let Ok(h) = serde_json::from_str::<LockHolder>(&text) {
                    last = h.to_string();
                    if h.is_live() {
                        return last;
                    }
                }
            }
            Err(e) => return format!("another process ({} unreadable: {e})", path.display()),
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    last
}

/// The held lock of one run directory; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Locks `run_dir` (creating it if needed) for this process, or fails naming the
    /// process that holds it: `RUN_DIR: is being trained by pid P on host H since T`.
    pub fn acquire(run_dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(run_dir).at(run_dir)?;
        let path = run_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(&path);
                return Err(Error::io(
                    run_dir,
                    std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        format!("is being trained by {holder}; wait for it or stop it"),
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let holder = LockHolder {
            pid: std::process::id(),
            host: host_name(),
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        };
        let json = serde_json::to_string(&holder).map_err(|e| Error::Encode {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        file.set_len(0).at(&path)?;
        file.seek(SeekFrom::Start(0)).at(&path)?;
        file.write_all(json.as_bytes()).at(&path)?;
        file.flush().at(&path)?;
        Ok(RunLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is the lock of `run_dir`.
    pub fn is_for(&self, run_dir: &Path) -> bool {
        let mine = self.path.parent().unwrap_or(Path::new("."));
        if mine == run_dir {
            return true;
        }
        match (std::fs::canonicalize(mine), std::fs::canonicalize(run_dir)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first says so explicitly.
        let _ = self.file.unlock();
    }
}

/// This machine's name, for the holder record. Read from the kernel (`/proc`, then
/// `/etc/hostname`, then `$HOSTNAME`) rather than through a crate: it is only shown to
/// the user, and "unknown" is an acceptable answer where none of these exist.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::callbacks::Stage;
    use crate::JobConfig;

    fn job(dir: &Path) -> JobConfig {
        let mut job = JobConfig::default();
        job.train.epochs = 1;
        job.train.run_dir = dir.to_path_buf();
        job
    }

    #[test]
    fn a_second_lock_names_the_holder_and_a_dropped_one_frees_the_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = RunLock::acquire(&dir).unwrap();
        assert!(first.is_for(&dir));
        let err = RunLock::acquire(&dir).unwrap_err().to_string();
        let pid = format!("is being trained by pid {} on host ", std::process::id());
        assert!(err.starts_with(&dir.display().to_string()), "{err}");
        assert!(err.contains(&pid), "{err}");
        assert!(err.contains("wait for it or stop it"), "{err}");
        let holder: LockHolder =
            serde_json::from_str(&std::fs::read_to_string(first.path()).unwrap()).unwrap();
        assert!(err.contains(&holder.since), "{err}");
        drop(first);
        RunLock::acquire(&dir).unwrap();
    }

    #[test]
    fn two_trainers_on_one_run_directory_the_second_fit_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let mut first = job(&dir).build_trainer().unwrap();
        let seen = Arc::new(Mutex::new(None::<String>));
        let (seen2, dir2) = (seen.clone(), dir.clone());
        first.on(Stage::TrainEpochBegin, move |_| {
            let mut second = job(&dir2).build_trainer()?;
            let result = second.fit().map(|_| ()).map_err(|e| e.to_string());
            *seen2.lock().unwrap() = Some(format!("{result:?}"));
            Ok(())
        });
        assert_eq!(first.fit().unwrap(), crate::trainer::Outcome::Finished);
        let seen = seen.lock().unwrap().clone().unwrap();
        assert!(
            seen.contains(&format!("is being trained by pid {}", std::process::id())),
            "the second fit was not refused: {seen}"
        );
        // Released at the end of the first `fit`: the run goes on in a later one.
        let mut again = job(&dir).build_trainer().unwrap();
        again
            .hold_run_lock(RunLock::acquire(&dir).unwrap())
            .unwrap();
    }
}
