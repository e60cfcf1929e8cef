//! Saving a checkpoint in two halves, so that a periodic save costs the training thread
//! only a copy. [`prepare`] takes what a checkpoint holds off the live run (host bytes of
//! every tensor, the meta) and touches no file; [`Prepared::write`] does the rest: SHA-256
//! of every file, the files, `fsync`, the report, the rename into place. [`Writer`] runs
//! the second half on one background thread, in the order saves were handed to it, at
//! most [`Writer::LIMIT`] at a time, and hands every failure back to the trainer.
//!
//! The contents are copied before the training thread goes on (the optimizer updates
//! weights in place), so what is written is the run exactly as it stood at the save; only
//! *when* it lands on disk changes. A kill before it lands leaves the previous checkpoint
//! as the newest, as a kill during a synchronous save would.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};

use super::{
    encode_state, sha256_hex, sync_dir, write_synced, CheckpointMeta, CheckpointTensors,
    FileDigest, CARRIED_FILE, MODEL_FILE, OPTIMIZER_FILE, SAVE_HOOK, STATE_FILE, TMP_PREFIX,
};
use crate::error::{Error, IoContext, Result};

/// Derived files written into a checkpoint directory before it is renamed into place
/// (the report): not checksummed, and their failure only warns.
pub type Extras = Box<dyn FnOnce(&Path, &CheckpointMeta) -> Result<()> + Send>;

/// Work to do once a save has landed (pruning older checkpoints); its failure is the
/// save's failure.
pub type Then = Box<dyn FnOnce() -> Result<()> + Send>;

/// The safetensors encoding of named tensors, through candle's own `safetensors::View`
/// implementation for `Tensor` (host copies, contiguous).
fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let host: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize(host.iter().map(|(n, t)| (n.as_str(), t)), None).map_err(|e| {
        Error::Encode {
            what: "checkpoint tensors".into(),
            reason: e.to_string(),
        }
    })
}

/// A checkpoint whose contents are taken, not yet written: see [`prepare`].
pub struct Prepared {
    parent: PathBuf,
    name: String,
    meta: CheckpointMeta,
    /// File name and its tensors, in the order they are written.
    files: Vec<(&'static str, Vec<(String, Tensor)>)>,
    extras: Extras,
}

/// Takes the contents of a checkpoint to be written as `parent/name`. Touches no file.
///
/// `tensors` must be snapshots that nothing changes afterwards (the trainer hands over
/// copies of the model's variables, whose storage the optimizer updates in place, and the
/// optimizer's freshly exported buffers): they are read when the checkpoint is written,
/// which for [`Writer`] is later, on another thread.
pub fn prepare(
    parent: &Path,
    name: &str,
    meta: CheckpointMeta,
    tensors: CheckpointTensors,
    extras: Extras,
) -> Result<Prepared> {
    let CheckpointTensors {
        model,
        optimizer,
        carried,
    } = tensors;
    Ok(Prepared {
        parent: parent.to_path_buf(),
        name: name.to_string(),
        meta,
        files: vec![
            (MODEL_FILE, model),
            (OPTIMIZER_FILE, optimizer),
            (CARRIED_FILE, carried),
        ],
        extras,
    })
}

impl Prepared {
    /// Where the checkpoint lands.
    pub fn dir(&self) -> PathBuf {
        self.parent.join(&self.name)
    }

    /// Writes the checkpoint atomically, replacing one of the same name: every file into
    /// a `.tmp-*` directory, fsynced, then renamed into place. Returns its directory.
    pub fn write(self) -> Result<PathBuf> {
        let Prepared {
            parent,
            name,
            mut meta,
            files,
            extras,
        } = self;
        std::fs::create_dir_all(&parent).at(&parent)?;
        let final_dir = parent.join(&name);
        // Removed again if anything below fails; kept (and renamed) only when complete.
        let tmp_dir = tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}{name}-"))
            .tempdir_in(&parent)
            .at(&parent)?;
        let tmp = tmp_dir.path().to_path_buf();
        meta.files.clear();
        for (file, tensors) in files {
            let bytes = safetensors_bytes(&tensors)?;
            drop(tensors);
            write_synced(&tmp.join(file), &bytes)?;
            meta.files.push(FileDigest {
                name: file.to_string(),
                len: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            });
        }
        write_synced(&tmp.join(STATE_FILE), &encode_state(&meta)?)?;
        if let Err(e) = extras(&tmp, &meta) {
            log::warn!("{e}");
        }
        sync_dir(&tmp)?;
        let tmp = tmp_dir.keep();
        if let Some(hook) = SAVE_HOOK.get() {
            hook(&final_dir, false);
        }
        if final_dir.exists() {
            // `best/` is replaced on every improvement; a numbered checkpoint exists
            // already only if an earlier session died after saving it but before
            // recording the count. Either way the new one supersedes it; the old one is
            // moved aside first so that a crash in between leaves one of the two complete.
            let old = parent.join(format!("{TMP_PREFIX}old-{name}-{}", std::process::id()));
            std::fs::rename(&final_dir, &old).at(&final_dir)?;
            std::fs::rename(&tmp, &final_dir).at(&final_dir)?;
            std::fs::remove_dir_all(&old).at(&old)?;
        } else {
            std::fs::rename(&tmp, &final_dir).at(&final_dir)?;
        }
        sync_dir(&parent)?;
        if let Some(hook) = SAVE_HOOK.get() {
            hook(&final_dir, true);
        }
        Ok(final_dir)
    }
}

/// One save for the background thread.
struct Job {
    save: Prepared,
    then: Option<Then>,
}

/// Writes prepared checkpoints on one background thread, in order (see the module
/// comment). Dropping it waits for the saves handed to it.
#[derive(Default)]
pub struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    done: Option<mpsc::Receiver<Result<PathBuf>>>,
    worker: Option<JoinHandle<()>>,
    /// Saves handed over whose result has not been collected.
    in_flight: usize,
    /// The directory of the save written last (or being written).
    last: Option<PathBuf>,
}

impl Writer {
    /// Saves in flight at most: one being written and one waiting (a periodic save and
    /// `best/` at the same transition). Handing over one more waits for the oldest.
    pub const LIMIT: usize = 2;

    /// Hands `save` to the background thread, then `then` once it has landed. First
    /// collects the saves that have finished: an earlier failure is returned instead
    /// (and `save` is dropped).
    pub fn submit(&mut self, save: Prepared, then: Option<Then>) -> Result<()> {
        self.poll()?;
        while self.in_flight >= Self::LIMIT {
            self.collect_one()?;
        }
        if self.jobs.is_none() {
            self.start()?;
        }
        self.last = Some(save.dir());
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|tx| tx.send(Job { save, then }).is_ok());
        match sent {
            true => {
                self.in_flight += 1;
                Ok(())
            }
            false => Err(self.worker_gone()),
        }
    }

    /// Collects the saves that have finished, without waiting: the first failure among
    /// them is returned.
    pub fn poll(&mut self) -> Result<()> {
        let mut first = Ok(());
        while self.in_flight > 0 {
            let Some(done) = &self.done else { break };
            match done.try_recv() {
                Ok(r) => {
                    self.in_flight -= 1;
                    if let (Err(e), Ok(())) = (r, &first) {
                        first = Err(e);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.in_flight = 0;
                    return Err(self.worker_gone());
                }
            }
        }
        first
    }

    /// Waits until every save handed over has landed; the first failure is returned
    /// (after all of them have ended).
    pub fn wait(&mut self) -> Result<()> {
        let mut first = Ok(());
        while self.in_flight > 0 {
            if let (Err(e), Ok(())) = (self.collect_one(), &first) {
                first = Err(e);
            }
        }
        first
    }

    /// Whether saves are handed over and not collected yet.
    pub fn busy(&self) -> bool {
        self.in_flight > 0
    }

    fn collect_one(&mut self) -> Result<()> {
        let got = self.done.as_ref().map(|rx| rx.recv());
        match got {
            Some(Ok(r)) => {
                self.in_flight -= 1;
                r.map(|_| ())
            }
            _ => {
                self.in_flight = 0;
                Err(self.worker_gone())
            }
        }
    }

    fn start(&mut self) -> Result<()> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("deeptrain-ckpt".into())
            .spawn(move || {
                for job in job_rx {
                    let r = job.save.write().and_then(|dir| {
                        if let Some(then) = job.then {
                            then()?;
                        }
                        Ok(dir)
                    });
                    if done_tx.send(r).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Io {
                path: self.last.clone().unwrap_or_default(),
                source: e,
            })?;
        self.jobs = Some(job_tx);
        self.done = Some(done_rx);
        self.worker = Some(worker);
        Ok(())
    }

    /// The error for a background thread that ended without answering (it panicked).
    fn worker_gone(&mut self) -> Error {
        self.jobs = None;
        self.done = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        Error::Io {
            path: self.last.clone().unwrap_or_default(),
            source: std::io::Error::other("the checkpoint writer thread stopped (panicked)"),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish the saves handed to it, then end.
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
