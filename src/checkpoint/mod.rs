//! Checkpoints: one directory each, written atomically, verified on load.
//!
//! ```text
//! RUN_DIR/checkpoints/ckpt-000007/
//!     state.bin              header + bincode(CheckpointMeta): TrainState, digests of the rest
//!     model.safetensors      weights by variable name
//!     optimizer.safetensors  moments and step count by variable name
//!     carried.safetensors    recurrent state of stateful models (often empty)
//! ```
//! A checkpoint is written into `.tmp-ckpt-*`, every file fsynced, then renamed into
//! place, so a crash mid-save leaves no half checkpoint where the loader looks; pruning
//! renames a checkpoint to `.tmp-pruned-*` before deleting it, for the same reason.
//! Loading checks the header's SHA-256 (which covers every header byte and the payload),
//! then the format version, every file's SHA-256 and the state's consistency
//! ([`CheckpointMeta::validate`]); `load_latest` falls back to the previous checkpoint
//! when the newest is damaged, and says which one it skipped. [`clean_stale`] removes
//! what killed processes left behind when a run starts again.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{Device, Tensor};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::optim::NamedVar;
mod meta;
mod writer;
pub use meta::{CheckpointMeta, FileDigest, RunInfo, SaveReason};
pub use writer::{prepare, Extras, Prepared, Then, Writer};

/// Version of the `state.bin` layout this build writes and reads.
/// 2: the data cursor (trainer) and the loader state are apart; no `val_epoch`.
/// 3: the SHA-256 covers magic, version and length too, not only the payload, so a
///    damaged version byte reads as damage (the payload is the same as version 2's,
///    and version 2 files are still read).
/// 4: the train state holds the augmentation stream (`rng.augment`); files of versions 2
///    and 3 are still read, with that stream at its start.
/// 5: the validation metrics hold their sample-weighted sums (`None` without weights);
///    files of versions 2 to 4 are still read, as sets without weights.
pub const FORMAT_VERSION: u32 = 5;
/// The last version whose checksum covers the payload only.
const LEGACY_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"DTCKPT\0\0";
/// magic + version (u32) + payload length (u64) + SHA-256 (of the 20 bytes before it
/// and the payload).
const HEADER_LEN: usize = 8 + 4 + 8 + 32;
/// The header bytes the checksum covers with the payload: magic, version, length.
const COVERED_HEADER: usize = 8 + 4 + 8;
/// The resolved job config a run directory starts with (written by `deeptrain train`).
pub const CONFIG_FILE: &str = "config.json";
/// Where a run directory keeps its numbered checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Header + bincode of [`CheckpointMeta`].
pub const STATE_FILE: &str = "state.bin";
/// The model's variables by name.
pub const MODEL_FILE: &str = "model.safetensors";
/// The optimizer's buffers and step count by name.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The carried (recurrent) state of stateful models.
pub const CARRIED_FILE: &str = "carried.safetensors";
/// Names of directories being written (or left by a crash mid-save) start with this.
const TMP_PREFIX: &str = ".tmp-";

/// What goes into a checkpoint besides its meta.
pub struct CheckpointTensors {
    /// The model's variables by name.
    pub model: Vec<(String, Tensor)>,
    /// The optimizer's buffers by name.
    pub optimizer: Vec<(String, Tensor)>,
    /// Carried recurrent state by name.
    pub carried: Vec<(String, Tensor)>,
}

/// A checkpoint read back and verified.
pub struct LoadedCheckpoint {
    /// The checkpoint's directory.
    pub dir: PathBuf,
    /// What `state.bin` held.
    pub meta: CheckpointMeta,
    /// The model's variables by name (on the CPU).
    pub model: HashMap<String, Tensor>,
    /// The optimizer's buffers by name.
    pub optimizer: HashMap<String, Tensor>,
    /// Carried recurrent state by name.
    pub carried: HashMap<String, Tensor>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).at(path)?;
    f.write_all(bytes).at(path)?;
    f.sync_all().at(path)
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|f| f.sync_all()).at(dir)
}

/// Encodes `meta` as the bytes of `state.bin`.
pub fn encode_state(meta: &CheckpointMeta) -> Result<Vec<u8>> {
    let payload =
        bincode::serde::encode_to_vec(meta, bincode::config::standard()).map_err(|e| {
            Error::Encode {
                what: "train state".into(),
                reason: e.to_string(),
            }
        })?;
    Ok(state_file_bytes(FORMAT_VERSION, &payload))
}

/// `state.bin` bytes of format `version` (3 and later) around `payload`.
fn state_file_bytes(version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let digest = header_digest(&out, payload);
    out.extend_from_slice(&digest);
    out.extend_from_slice(payload);
    out
}

/// SHA-256 of the covered header bytes and the payload (format 3 and later).
fn header_digest(covered: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(covered);
    h.update(payload);
    h.finalize().into()
}

/// Decodes and verifies `state.bin` bytes read from `path`.
pub fn decode_state(path: &Path, bytes: &[u8]) -> Result<CheckpointMeta> {
    let corrupt = |reason: String| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(Error::NotACheckpoint {
            path: path.to_path_buf(),
            reason: "missing the DTCKPT header".into(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "header truncated at {} bytes",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[12..COVERED_HEADER]);
    let len = u64::from_le_bytes(len8);
    let stored = &bytes[COVERED_HEADER..HEADER_LEN];
    let payload = &bytes[HEADER_LEN..];
    // The checksum first: only a header that it vouches for says which format this is,
    // so a damaged version byte is damage (skipped over), not "another version".
    let covered = header_digest(&bytes[..COVERED_HEADER], payload).as_slice() == stored;
    // Formats up to 2 checksummed the payload only; such a file keeps that weakness.
    let legacy = !covered
        && (1..=LEGACY_VERSION).contains(&version)
        && Sha256::digest(payload).as_slice() == stored;
    if !covered && !legacy {
        return Err(corrupt(if payload.len() as u64 != len {
            format!(
                "header announces {len} bytes of state but {} follow",
                payload.len()
            )
        } else {
            "state checksum mismatch".into()
        }));
    }
    let readable = if covered {
        (LEGACY_VERSION + 1..=FORMAT_VERSION).contains(&version)
    } else {
        version == LEGACY_VERSION
    };
    if !readable {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if payload.len() as u64 != len {
        return Err(corrupt(format!(
            "header announces {len} bytes of state but {} follow",
            payload.len()
        )));
    }
    crate::state::format::with_format(version, || decode_payload(payload)).map_err(|e| {
        corrupt(match e {
            bincode::error::DecodeError::LimitExceeded => format!(
                "state does not decode: it declares more data than its {} bytes can hold \
                 (a corrupt length)",
                payload.len()
            ),
            e => format!("state does not decode: {e}"),
        })
    })
}

/// Decodes a `state.bin` payload, refusing to allocate more than 16 bytes per payload byte
/// (rounded up to a bucket). bincode counts the in-memory size of every value it decodes, and
/// no value of the state takes more than 16 bytes in memory per byte on disk (a one-byte
/// varint `u128`), so a real state always fits, while a corrupt length (a string of 2^60
/// bytes) is an error instead of an allocation failure. bincode takes the limit as a const
/// generic only, hence the buckets.
fn decode_payload(
    payload: &[u8],
) -> std::result::Result<CheckpointMeta, bincode::error::DecodeError> {
    fn limited<const LIMIT: usize>(
        payload: &[u8],
    ) -> std::result::Result<CheckpointMeta, bincode::error::DecodeError> {
        let config = bincode::config::standard().with_limit::<LIMIT>();
        bincode::serde::decode_from_slice(payload, config).map(|(meta, _)| meta)
    }
    match payload.len() {
        n if n <= 1 << 16 => limited::<{ 16 << 16 }>(payload),
        n if n <= 1 << 20 => limited::<{ 16 << 20 }>(payload),
        n if n <= 1 << 24 => limited::<{ 16 << 24 }>(payload),
        n if n <= 1 << 28 => limited::<{ 16 << 28 }>(payload),
        _ => limited::<{ usize::MAX }>(payload),
    }
}

/// Sequence number of a `ckpt-NNNNNN` directory name.
fn sequence_of(name: &str) -> Option<u64> {
    name.strip_prefix("ckpt-")?.parse().ok()
}

/// Checkpoint directories of a run, oldest first.
pub fn list(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = run_dir.join(CHECKPOINTS_DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(&dir)
        .at(&dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            sequence_of(&name).map(|s| (s, e.path()))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Writes a checkpoint atomically into `run_dir/checkpoints/ckpt-{sequence}`; returns its path.
/// `extras` writes derived files (the report) into the directory before it is renamed
/// into place; they are not checksummed, and their failure does not fail the save.
pub fn save(
    run_dir: &Path,
    sequence: u64,
    meta: CheckpointMeta,
    tensors: CheckpointTensors,
    extras: Extras,
) -> Result<PathBuf> {
    prepare(
        &run_dir.join(CHECKPOINTS_DIR),
        &numbered(sequence),
        meta,
        tensors,
        extras,
    )?
    .write()
}

/// The directory name of the `sequence`-th checkpoint: `ckpt-000007`.
pub fn numbered(sequence: u64) -> String {
    format!("ckpt-{sequence:06}")
}

/// Name of the directory holding the best checkpoint by key metric, in the run dir.
pub const BEST_DIR: &str = "best";

/// A function [`Prepared::write`] calls with the checkpoint directory it writes: with
/// `false` when the temporary directory is complete and synced, just before it is renamed
/// into place, then with `true` once the rename is synced.
pub type SaveHook = Box<dyn Fn(&Path, bool) + Send + Sync>;

/// Test-only (see [`set_save_hook_for_tests`]); never set in normal use.
static SAVE_HOOK: OnceLock<SaveHook> = OnceLock::new();

/// **Test-only.** Installs, once per process, a [`SaveHook`] that every save calls: the
/// `deeptrain` binary sets one only for `DEEPTRAIN_TEST_PAUSE=in_save:K` or
/// `after_save:K`, so that fault-injection tests can kill the process in the middle of a
/// save. A save without one costs two atomic loads. Returns `false` (and drops `hook`)
/// when one is installed already.
#[doc(hidden)]
pub fn set_save_hook_for_tests(hook: SaveHook) -> bool {
    SAVE_HOOK.set(hook).is_ok()
}

/// Writes a checkpoint atomically as `parent/name`, replacing one that is there (see
/// [`Prepared::write`]).
pub fn save_as(
    parent: &Path,
    name: &str,
    meta: CheckpointMeta,
    tensors: CheckpointTensors,
    extras: Extras,
) -> Result<PathBuf> {
    prepare(parent, name, meta, tensors, extras)?.write()
}

/// Deletes all but the newest `keep` checkpoints, and leftovers of interrupted saves.
pub fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    prune_with(run_dir, keep, &|dir| fs::remove_dir_all(dir))
}

/// [`prune`] with the deletion given, so a test can stop it half way as a kill would.
fn prune_with(
    run_dir: &Path,
    keep: usize,
    remove: &dyn Fn(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let all = list(run_dir)?;
    let n = all.len().saturating_sub(keep.max(1));
    let parent = run_dir.join(CHECKPOINTS_DIR);
    for old in &all[..n] {
        // Out of the loader's sight first: a kill during the deletion leaves a
        // `.tmp-pruned-*` directory, never a half-deleted `ckpt-*` one.
        let name = old.file_name().unwrap_or_default().to_string_lossy();
        let trash = parent.join(format!("{TMP_PREFIX}pruned-{name}"));
        if trash.exists() {
            remove(&trash).at(&trash)?;
        }
        fs::rename(old, &trash).at(old)?;
    }
    if n > 0 {
        sync_dir(&parent)?;
    }
    // Leftovers of saves that a crash interrupted and the checkpoints just retired
    // (never loaded: no `ckpt-` name). No save is under way while pruning, so every one
    // of them is stale.
    for e in fs::read_dir(&parent).at(&parent)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            if let Err(err) = remove(&e.path()) {
                log::warn!(
                    "could not remove {} (removed at the next start): {err}",
                    e.path().display()
                );
            }
        }
    }
    Ok(())
}

/// Whether `name`, in a run directory or its `checkpoints/`, is something a killed
/// process left behind: a checkpoint being written, moved aside or pruned
/// (`.tmp-*`), a CSV log being rewritten (`.tmpXXXXXX`, `tempfile`'s default name) or a
/// report being rendered (`.report.png.XXXXXX.tmp`).
fn is_stale(name: &str) -> bool {
    name.starts_with(".tmp") || (name.starts_with('.') && name.ends_with(".tmp"))
}

/// Removes the temp files and directories that killed processes left in a run directory
/// and its `checkpoints/`; call it when a run starts, before anything is written.
/// A complete checkpoint that a save moved aside (`.tmp-old-NAME-PID`) and did not
/// replace is put back as `NAME` instead. A missing run directory is nothing to clean;
/// an entry that cannot be removed is a warning (it is tried again at the next start).
pub fn clean_stale(run_dir: &Path) -> Result<()> {
    for dir in [run_dir.to_path_buf(), run_dir.join(CHECKPOINTS_DIR)] {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_stale(&name) {
                continue;
            }
            let path = e.path();
            let restore = name
                .strip_prefix(&format!("{TMP_PREFIX}old-"))
                .and_then(|rest| rest.rsplit_once('-'))
                .map(|(original, _pid)| dir.join(original))
                .filter(|original| !original.exists());
            if let Some(original) = restore {
                match fs::rename(&path, &original) {
                    Ok(()) => continue,
                    Err(err) => log::warn!(
                        "could not move {} back to {}: {err}",
                        path.display(),
                        original.display()
                    ),
                }
            }
            let removed = if e.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(err) = removed {
                log::warn!("could not remove {}: {err}", path.display());
            }
        }
    }
    Ok(())
}

impl LoadedCheckpoint {
    /// The saved weights of `vars`, in their order, moved to `device` in each variable's
    /// dtype. Every variable must be saved with its shape, else the model file is named as
    /// corrupt. Nothing is changed, so a caller can check all before setting any.
    pub fn weights_for(&self, vars: &[NamedVar], device: &Device) -> Result<Vec<Tensor>> {
        let corrupt = |reason: String| Error::CorruptCheckpoint {
            path: self.dir.join(MODEL_FILE),
            reason,
        };
        vars.iter()
            .map(|v| {
                let t = self
                    .model
                    .get(&v.name)
                    .ok_or_else(|| corrupt(format!("no weights for variable `{}`", v.name)))?;
                if t.dims() != v.var.dims() {
                    return Err(corrupt(format!(
                        "`{}` has shape {:?}, the model expects {:?}",
                        v.name,
                        t.dims(),
                        v.var.dims()
                    )));
                }
                Ok(t.to_device(device)?.to_dtype(v.var.dtype())?)
            })
            .collect()
    }
}

/// Refuses a tensor file of `path` holding a shape whose dimensions, zeros left out,
/// multiply past `usize`: candle would compute its strides with that product (a panic in
/// debug builds, wrong strides otherwise), even when a zero makes the tensor empty.
fn check_shapes(path: &Path, bytes: &[u8]) -> Result<()> {
    let corrupt = |reason: String| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    };
    let tensors =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
    for (name, view) in tensors.tensors() {
        let shape = view.shape();
        if shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
            .is_none()
        {
            return Err(corrupt(format!(
                "tensor `{name}` has shape {shape:?}, too large to address"
            )));
        }
    }
    Ok(())
}

/// Reads and verifies the checkpoint in `dir`.
pub fn load(dir: &Path) -> Result<LoadedCheckpoint> {
    let state_path = dir.join(STATE_FILE);
    if !state_path.is_file() {
        return Err(Error::NotACheckpoint {
            path: dir.to_path_buf(),
            reason: format!("no {STATE_FILE}"),
        });
    }
    let bytes = fs::read(&state_path).at(&state_path)?;
    let meta = decode_state(&state_path, &bytes)?;
    meta.validate().map_err(|reason| Error::CorruptCheckpoint {
        path: state_path.clone(),
        reason,
    })?;
    let mut maps = Vec::new();
    for file in [MODEL_FILE, OPTIMIZER_FILE, CARRIED_FILE] {
        let path = dir.join(file);
        let digest =
            meta.files
                .iter()
                .find(|d| d.name == file)
                .ok_or_else(|| Error::CorruptCheckpoint {
                    path: state_path.clone(),
                    reason: format!("no digest recorded for {file}"),
                })?;
        let bytes = fs::read(&path).map_err(|e| Error::CorruptCheckpoint {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if bytes.len() as u64 != digest.len || sha256_hex(&bytes) != digest.sha256 {
            return Err(Error::CorruptCheckpoint {
                path,
                reason: format!(
                    "{} bytes with SHA-256 {}, expected {} bytes with {}",
                    bytes.len(),
                    &sha256_hex(&bytes)[..12],
                    digest.len,
                    &digest.sha256[..12.min(digest.sha256.len())]
                ),
            });
        }
        check_shapes(&path, &bytes)?;
        let map = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            Error::CorruptCheckpoint {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        maps.push(map);
    }
    let carried = maps.pop().unwrap_or_default();
    let optimizer = maps.pop().unwrap_or_default();
    let model = maps.pop().unwrap_or_default();
    Ok(LoadedCheckpoint {
        dir: dir.to_path_buf(),
        meta,
        model,
        optimizer,
        carried,
    })
}

/// Loads `path` if it is a checkpoint directory, else the newest good checkpoint of the
/// run directory `path`. Damaged checkpoints that are skipped are reported on stderr.
pub fn load_latest(path: &Path) -> Result<LoadedCheckpoint> {
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    if path.join(STATE_FILE).is_file() {
        return load(path);
    }
    let all = list(path)?;
    if all.is_empty() {
        let reason = if path.join(CONFIG_FILE).is_file() {
            // Killed or failed before its first checkpoint: nothing to resume, and
            // nothing in the way of training it again.
            format!(
                "the run never started (it stopped before its first checkpoint): start it \
                 again with `deeptrain train --run-dir {}`",
                path.display()
            )
        } else {
            format!("no {CHECKPOINTS_DIR}/ckpt-* directories and no {STATE_FILE}")
        };
        return Err(Error::NoCheckpoint {
            path: path.to_path_buf(),
            reason,
        });
    }
    let mut errors = Vec::new();
    for dir in all.iter().rev() {
        match load(dir) {
            Ok(ckpt) => {
                for e in &errors {
                    log::warn!("skipped damaged checkpoint: {e}");
                }
                return Ok(ckpt);
            }
            Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    Err(Error::NoCheckpoint {
        path: path.to_path_buf(),
        reason: errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// The run directory a checkpoint directory belongs to (`RUN/checkpoints/ckpt-N` or
/// `RUN/best`).
pub fn run_dir_of(ckpt_dir: &Path) -> PathBuf {
    match ckpt_dir.parent() {
        Some(p) if p.file_name().is_some_and(|n| n == CHECKPOINTS_DIR) => {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        }
        Some(p) if ckpt_dir.file_name().is_some_and(|n| n == BEST_DIR) => p.to_path_buf(),
        _ => ckpt_dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests;
