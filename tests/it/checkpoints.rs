//! Checkpoints on disk: damage is detected and named, `load_latest` falls back to the
//! previous good checkpoint, crashed saves leave nothing the loader trusts, pruning.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::common::{scratch, small_job, state_bytes};
use deeptrain::checkpoint::{self, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE};
use deeptrain::trainer::Every;
use deeptrain::{Error, Model, Outcome, Trainer};

/// A finished 2-epoch run with a checkpoint after every epoch (and one at the end),
/// nothing pruned. Returns its directory and the final state as bytes.
fn finished_run(name: &str) -> (PathBuf, Vec<u8>) {
    let run = scratch(name);
    let mut job = small_job(&run);
    job.train.checkpoint_every = Every::Epochs(1);
    job.train.keep_last = 10;
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let state = state_bytes(&trainer.state);
    let n = checkpoint::list(&run).unwrap().len();
    assert!(n >= 3, "expected at least 3 checkpoints, found {n}");
    (run, state)
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// Loads `dir` directly, turning a panic into a test failure that says so.
fn load_no_panic(dir: &Path) -> deeptrain::Result<checkpoint::LoadedCheckpoint> {
    catch_unwind(AssertUnwindSafe(|| checkpoint::load(dir)))
        .unwrap_or_else(|_| panic!("checkpoint::load panicked on {}", dir.display()))
}

fn latest_no_panic(dir: &Path) -> deeptrain::Result<checkpoint::LoadedCheckpoint> {
    catch_unwind(AssertUnwindSafe(|| checkpoint::load_latest(dir)))
        .unwrap_or_else(|_| panic!("checkpoint::load_latest panicked on {}", dir.display()))
}

fn err_of<T>(r: deeptrain::Result<T>, what: &str) -> Error {
    match r {
        Ok(_) => panic!("{what}: expected an error, got Ok"),
        Err(e) => e,
    }
}

#[test]
fn corrupt_newest_model_falls_back_to_previous_and_resumes() {
    let (run, final_state) = finished_run("ckpt-corrupt-model");
    let all = checkpoint::list(&run).unwrap();
    let newest = all.last().unwrap().clone();
    let previous = all[all.len() - 2].clone();
    let model = newest.join(MODEL_FILE);
    let len = std::fs::metadata(&model).unwrap().len() as usize;
    flip_byte(&model, len / 2);

    // Loading the damaged checkpoint itself names the damaged file.
    for err in [
        err_of(load_no_panic(&newest), "load"),
        err_of(latest_no_panic(&newest), "load_latest(ckpt dir)"),
    ] {
        assert!(matches!(err, Error::CorruptCheckpoint { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&model.display().to_string()), "{msg}");
    }

    // The run directory falls back to the previous checkpoint.
    let loaded = latest_no_panic(&run).unwrap();
    assert_eq!(loaded.dir, previous);

    // And the run resumes from there and ends where it ended before.
    let mut trainer = Trainer::resume(&run).unwrap();
    assert_eq!(trainer.last_checkpoint(), Some(previous.as_path()));
    assert!(
        !trainer.state.is_done(),
        "previous checkpoint should be mid-run"
    );
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    assert!(state_bytes(&trainer.state) == final_state, "state differs");
    // The new final checkpoint took the damaged one's place.
    assert_eq!(trainer.last_checkpoint(), Some(newest.as_path()));
    load_no_panic(&newest).unwrap();
}

#[test]
fn missing_or_damaged_optimizer_file_is_named() {
    let (run, _) = finished_run("ckpt-corrupt-optimizer");
    let newest = checkpoint::list(&run).unwrap().pop().unwrap();
    let opt = newest.join(OPTIMIZER_FILE);
    let original = std::fs::read(&opt).unwrap();

    flip_byte(&opt, 3);
    let msg = err_of(load_no_panic(&newest), "flipped optimizer").to_string();
    assert!(msg.contains(&opt.display().to_string()), "{msg}");

    std::fs::remove_file(&opt).unwrap();
    let msg = err_of(load_no_panic(&newest), "missing optimizer").to_string();
    assert!(msg.contains(&opt.display().to_string()), "{msg}");

    std::fs::write(&opt, original).unwrap();
    load_no_panic(&newest).unwrap();
}

/// Pseudo-random bytes (a fixed LCG), so failures reproduce.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

#[test]
fn damaged_state_bin_is_an_error_not_a_panic() {
    let (run, _) = finished_run("ckpt-state-bin");
    let all = checkpoint::list(&run).unwrap();
    let newest = all.last().unwrap().clone();
    let previous = all[all.len() - 2].clone();
    let state_path = newest.join(STATE_FILE);
    let original = std::fs::read(&state_path).unwrap();
    let shown = state_path.display().to_string();

    // A valid header around a payload that is not a CheckpointMeta.
    let garbage_payload = state_file(3, &noise(300, 42), true);
    let mut flipped_payload = original.clone();
    *flipped_payload.last_mut().unwrap() ^= 1;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated to 4 bytes", original[..4].to_vec()),
        ("truncated in the header", original[..30].to_vec()),
        (
            "truncated in the payload",
            original[..original.len() / 2].to_vec(),
        ),
        ("one byte short", original[..original.len() - 1].to_vec()),
        ("garbage", noise(original.len(), 7)),
        ("payload flipped", flipped_payload),
        ("garbage payload, valid checksum", garbage_payload),
    ];
    for (what, bytes) in cases {
        std::fs::write(&state_path, &bytes).unwrap();
        let err = err_of(load_no_panic(&newest), what);
        assert!(
            matches!(
                err,
                Error::CorruptCheckpoint { .. } | Error::NotACheckpoint { .. }
            ),
            "{what}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&shown),
            "{what}: message does not name the file: {msg}"
        );
        // Damage is skipped over: the run still loads, from the previous checkpoint.
        let loaded = latest_no_panic(&run).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(loaded.dir, previous, "{what}");
    }

    // A newer format is reported as such, with the version found; no silent fallback.
    let payload = &original[52..];
    std::fs::write(&state_path, state_file(999, payload, true)).unwrap();
    for (what, r) in [
        ("load", load_no_panic(&newest)),
        ("load_latest", latest_no_panic(&run)),
    ] {
        let err = err_of(r, what);
        let Error::UnsupportedVersion { found, .. } = &err else {
            panic!("{what}: expected UnsupportedVersion, got {err:?}");
        };
        assert_eq!(*found, 999);
        let msg = err.to_string();
        assert!(msg.contains("999"), "{msg}");
        assert!(msg.contains(&shown), "{msg}");
    }
    let msg = err_of(Trainer::resume(&run), "resume v999").to_string();
    assert!(
        msg.contains("999") && msg.contains("newer version"),
        "{msg}"
    );

    // A checkpoint of an older format says so, and what to do.
    std::fs::write(&state_path, state_file(1, payload, false)).unwrap();
    let msg = err_of(Trainer::resume(&run), "resume v1").to_string();
    assert!(
        msg.contains("made by an older version of deeptrain") && msg.contains("format 1"),
        "{msg}"
    );

    std::fs::write(&state_path, &original).unwrap();
    assert_eq!(latest_no_panic(&run).unwrap().dir, newest);
}

/// `state.bin` bytes of format `version` around `payload`: the checksum covers the
/// header too (`covered`, format 3 on), or the payload only (formats 1 and 2).
pub(crate) fn state_file(version: u32, payload: &[u8], covered: bool) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut b = b"DTCKPT\0\0".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let digest = if covered {
        Sha256::new()
            .chain_update(&b)
            .chain_update(payload)
            .finalize()
    } else {
        Sha256::digest(payload)
    };
    b.extend_from_slice(&digest);
    b.extend_from_slice(payload);
    b
}

/// The payload of `state.bin` bytes of the current format re-encoded as formats 2 and 3
/// wrote it (the train state without the augmentation stream).
pub(crate) fn format3_payload(path: &Path, state_bin: &[u8]) -> Vec<u8> {
    let meta = checkpoint::decode_state(path, state_bin).unwrap();
    deeptrain::state::format::with_format(3, || {
        bincode::serde::encode_to_vec(&meta, bincode::config::standard()).unwrap()
    })
}

#[test]
fn every_header_byte_is_checked_and_damage_there_falls_back() {
    let (run, final_state) = finished_run("ckpt-header-bytes");
    let all = checkpoint::list(&run).unwrap();
    let newest = all.last().unwrap().clone();
    let previous = all[all.len() - 2].clone();
    let state_path = newest.join(STATE_FILE);
    let original = std::fs::read(&state_path).unwrap();
    assert_eq!(&original[8..12], &checkpoint::FORMAT_VERSION.to_le_bytes());
    // Every bit of the version and length, and one change in every other header byte:
    // always damage, skipped over for the previous checkpoint, never "another version".
    let mut changes: Vec<(usize, u8)> = (8..20)
        .flat_map(|at| (0..8).map(move |b| (at, 1 << b)))
        .collect();
    changes.extend((0..52).map(|at| (at, 0x5a)));
    for (at, mask) in changes {
        let mut bytes = original.clone();
        bytes[at] ^= mask;
        std::fs::write(&state_path, &bytes).unwrap();
        let what = format!("byte {at} ^ {mask:#04x}");
        let err = err_of(load_no_panic(&newest), &what);
        assert!(
            matches!(
                err,
                Error::CorruptCheckpoint { .. } | Error::NotACheckpoint { .. }
            ),
            "{what}: {err:?}"
        );
        let loaded = latest_no_panic(&run).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(loaded.dir, previous, "{what}");
    }
    // A version-2 file (the payload of format 3, checksum over the payload only) is
    // still read.
    let legacy = format3_payload(&state_path, &original);
    std::fs::write(&state_path, state_file(2, &legacy, false)).unwrap();
    assert_eq!(latest_no_panic(&run).unwrap().dir, newest);
    // ... and a version 3 file that claims the legacy checksum is damage.
    std::fs::write(&state_path, state_file(3, &legacy, false)).unwrap();
    assert_eq!(latest_no_panic(&run).unwrap().dir, previous);
    std::fs::write(&state_path, &original).unwrap();
    let mut trainer = Trainer::resume(&run).unwrap();
    assert_eq!(trainer.last_checkpoint(), Some(newest.as_path()));
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    assert_eq!(state_bytes(&trainer.state), final_state);
}

fn ckpt_names(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join(checkpoint::CHECKPOINTS_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn crashed_save_is_ignored_then_cleaned_and_keep_last_prunes() {
    let run = scratch("ckpt-tmp-keep");
    let mut job = small_job(&run);
    job.train.epochs = 1;
    job.train.keep_last = 2;
    job.train.checkpoint_every = Every::Batches(5);
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    // Many checkpoints were written, the 2 newest kept.
    let saved = trainer.state.checkpoints_saved;
    assert!(saved >= 4, "only {saved} checkpoints written");
    let expect = |n: u64| vec![format!("ckpt-{:06}", n - 1), format!("ckpt-{n:06}")];
    assert_eq!(ckpt_names(&run), expect(saved));
    let newest = trainer.last_checkpoint().unwrap().to_path_buf();

    // A process that died mid-save left a complete-looking copy with a higher number
    // and a half-written one. Neither is a checkpoint to the loader.
    let parent = run.join(checkpoint::CHECKPOINTS_DIR);
    let full = parent.join(".tmp-ckpt-000999-99999999");
    let half = parent.join(".tmp-ckpt-001000-88888888");
    copy_dir(&newest, &full);
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join(MODEL_FILE), b"half").unwrap();
    assert_eq!(latest_no_panic(&run).unwrap().dir, newest);
    assert_eq!(checkpoint::list(&run).unwrap().len(), 2);
    assert_eq!(
        Trainer::resume(&run).unwrap().last_checkpoint(),
        Some(newest.as_path())
    );

    // The next save removes the leftovers and still keeps exactly 2.
    let next = trainer.save_checkpoint().unwrap();
    assert!(!full.exists() && !half.exists(), "{:?}", ckpt_names(&run));
    assert_eq!(ckpt_names(&run), expect(saved + 1));
    assert_eq!(latest_no_panic(&run).unwrap().dir, next);
    trainer.save_checkpoint().unwrap();
    assert_eq!(ckpt_names(&run), expect(saved + 2));
}

#[test]
fn no_checkpoint_errors_name_the_path() {
    let empty = scratch("ckpt-none");
    for dir in [empty.clone(), {
        let d = empty.join("with-empty-folder");
        std::fs::create_dir_all(d.join(checkpoint::CHECKPOINTS_DIR)).unwrap();
        d
    }] {
        let err = err_of(latest_no_panic(&dir), "empty run dir");
        assert!(matches!(err, Error::NoCheckpoint { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&dir.display().to_string()),
            "{err}"
        );
        let msg = err_of(Trainer::resume(&dir), "resume empty").to_string();
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
    }
    let missing = empty.join("does-not-exist");
    let err = err_of(latest_no_panic(&missing), "missing dir");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_checkpoint_of_another_model_is_refused_and_changes_nothing() {
    let small = scratch("ckpt-other-model-small");
    let mut job = crate::common::small_job(&small);
    job.train.epochs = 1;
    job.build_trainer().unwrap().fit().unwrap();

    // Same layer names, other hidden size: the shapes differ from layer 0 on.
    let big = scratch("ckpt-other-model-big");
    let mut other = crate::common::small_job(&big);
    other.model.set("hidden", vec![48]);
    let mut trainer = other.build_trainer().unwrap();
    let before = crate::common::state_bytes(&trainer.state);
    let weights = |t: &deeptrain::Trainer| -> Vec<Vec<f32>> {
        t.optimizer()
            .vars()
            .iter()
            .map(|v| v.var.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    let w_before = weights(&trainer);
    let err = trainer.load_checkpoint(&small).unwrap_err().to_string();
    assert!(
        err.contains("layers.0") && err.contains("shape") && err.contains("model.safetensors"),
        "{err}"
    );
    assert!(crate::common::state_bytes(&trainer.state) == before);
    assert_eq!(weights(&trainer), w_before);
}

/// A model with a frozen variable: the optimizer updates only `layers.*`, `frozen.scale`
/// multiplies the output and never changes.
struct PartlyFrozen {
    mlp: deeptrain::Mlp,
    scale: candle_core::Var,
}

impl deeptrain::Model for PartlyFrozen {
    fn name(&self) -> String {
        "partly frozen".into()
    }
    fn varmap(&self) -> &candle_nn::VarMap {
        self.mlp.varmap()
    }
    fn forward(
        &mut self,
        x: &candle_core::Tensor,
        ctx: &mut deeptrain::model::ForwardCtx,
    ) -> deeptrain::Result<candle_core::Tensor> {
        Ok(self
            .mlp
            .forward(x, ctx)?
            .broadcast_mul(self.scale.as_tensor())?)
    }
}

fn partly_frozen(run: &Path, scale: f32) -> deeptrain::TrainerBuilder {
    use deeptrain::optim::named_vars;
    let mut init = deeptrain::RngStream::new(5, deeptrain::StreamId::Init);
    let config = deeptrain::MlpConfig {
        inputs: 2,
        hidden: vec![8],
        outputs: 2,
        dropout: 0.0,
    };
    let mlp = deeptrain::Mlp::new(config, &mut init, &candle_core::Device::Cpu).unwrap();
    let trainable = named_vars(mlp.varmap());
    let scale_var = candle_core::Var::new(&[scale], &candle_core::Device::Cpu).unwrap();
    mlp.varmap()
        .data()
        .lock()
        .unwrap()
        .insert("frozen.scale".into(), scale_var.clone());
    let optimizer = deeptrain::Sgd::from_named(trainable, Default::default());
    let x: Vec<f32> = (0..64).map(|i| (i % 7) as f32 / 7.0).collect();
    let y: Vec<u32> = (0..32).map(|i| i % 2).collect();
    let data =
        deeptrain::data_loaders::InMemoryData::classification("toy", x, vec![2], y, 2).unwrap();
    let model = PartlyFrozen {
        mlp,
        scale: scale_var,
    };
    Trainer::builder(model, optimizer)
        .train_data(data)
        .epochs(1)
        .batch_size(8)
        .run_dir(run)
}

#[test]
fn frozen_variables_are_saved_and_restored() {
    let run = scratch("ckpt-frozen");
    let mut trainer = partly_frozen(&run, 0.5).build().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let saved = checkpoint::load_latest(&run).unwrap();
    let scale = saved.model["frozen.scale"].to_vec1::<f32>().unwrap();
    assert_eq!(
        scale,
        [0.5],
        "the frozen variable is in model.safetensors, unchanged"
    );
    assert!(saved.model.contains_key("layers.0.weight"));
    assert!(!saved.optimizer.keys().any(|k| k.contains("frozen")));
    // Built with another value, resuming restores the saved one.
    let resumed = partly_frozen(&run, 2.0).resume_from(&run).build().unwrap();
    let restored = resumed.model().varmap().data().lock().unwrap()["frozen.scale"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(restored, [0.5]);
}

#[test]
fn resume_from_needs_a_loadable_checkpoint() {
    let run = scratch("ckpt-resume-from");
    let empty = scratch("ckpt-resume-from-empty");
    let e = partly_frozen(&run, 1.0)
        .resume_from(&empty)
        .build()
        .err()
        .expect("no checkpoint is an error, not a fresh start");
    assert!(e.to_string().contains(&empty.display().to_string()), "{e}");
    let mut trainer = partly_frozen(&run, 1.0).build().unwrap();
    trainer.fit().unwrap();
    let newest = checkpoint::load_latest(&run).unwrap().dir;
    for c in checkpoint::list(&run).unwrap() {
        flip_byte(&c.join(MODEL_FILE), 100);
    }
    let e = partly_frozen(&run, 1.0)
        .resume_from(&run)
        .build()
        .err()
        .expect("a damaged checkpoint is an error");
    assert!(e.to_string().contains("no loadable checkpoint"), "{e}");
    let e = partly_frozen(&run, 1.0)
        .resume_from(&newest)
        .build()
        .err()
        .expect("a damaged checkpoint is an error");
    assert!(e.to_string().contains(MODEL_FILE), "{e}");
}

#[test]
fn stale_temp_files_are_removed_when_the_run_starts_again() {
    let run = scratch("ckpt-stale-temps");
    let mut job = small_job(&run);
    job.train.epochs = 1;
    job.train.keep_last = 2;
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let newest = trainer.last_checkpoint().unwrap().to_path_buf();
    let parent = run.join(checkpoint::CHECKPOINTS_DIR);
    let names_before = ckpt_names(&run);

    // What kills leave: checkpoint and best/ saves under way (with a report inside),
    // a numbered checkpoint being pruned, a checkpoint moved aside, a CSV log and a
    // report being rewritten.
    let stale_dirs = [
        parent.join(".tmp-ckpt-000999-abcdef"),
        parent.join(".tmp-pruned-ckpt-000001"),
        // (moved aside, but the checkpoint it was replaced by is in place)
        parent.join(".tmp-old-ckpt-000001-4242"),
        run.join(".tmp-best-xyz123"),
    ];
    for d in &stale_dirs {
        copy_dir(&newest, d);
        std::fs::write(d.join(".report.png.Ab12Cd.tmp"), b"half a png").unwrap();
    }
    std::fs::remove_file(stale_dirs[1].join(MODEL_FILE)).unwrap();
    let stale_files = [run.join(".tmpA1b2C3"), run.join(".report.png.Zz9Yy8.tmp")];
    for f in &stale_files {
        std::fs::write(f, b"partial").unwrap();
    }
    // None of them is a checkpoint.
    assert_eq!(
        checkpoint::list(&run).unwrap(),
        names_before
            .iter()
            .filter(|n| n.starts_with("ckpt-"))
            .map(|n| parent.join(n))
            .collect::<Vec<_>>()
    );
    assert_eq!(latest_no_panic(&run).unwrap().dir, newest);

    // The next start removes them all, though it writes no checkpoint (the run is done).
    let mut again = Trainer::resume(&run).unwrap();
    assert_eq!(again.fit().unwrap(), Outcome::Finished);
    for p in stale_dirs.iter().chain(&stale_files) {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    assert_eq!(ckpt_names(&run), names_before);
    assert!(run.join(checkpoint::BEST_DIR).join(STATE_FILE).is_file());
}

#[test]
fn a_best_checkpoint_moved_aside_by_a_killed_save_is_put_back() {
    let run = scratch("ckpt-best-aside");
    let mut job = small_job(&run);
    job.train.epochs = 1;
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let best = run.join(checkpoint::BEST_DIR);
    let best_state = std::fs::read(best.join(STATE_FILE)).unwrap();
    // Killed between moving the old best/ aside and renaming the new one into place.
    let aside = run.join(".tmp-old-best-31337");
    std::fs::rename(&best, &aside).unwrap();
    copy_dir(&aside, &run.join(".tmp-best-Q1w2E3"));
    checkpoint::clean_stale(&run).unwrap();
    assert!(!aside.exists() && !run.join(".tmp-best-Q1w2E3").exists());
    assert_eq!(std::fs::read(best.join(STATE_FILE)).unwrap(), best_state);
    checkpoint::load(&best).unwrap();
    // Nothing to clean is fine, and so is a run directory that does not exist.
    checkpoint::clean_stale(&run).unwrap();
    checkpoint::clean_stale(&run.join("missing")).unwrap();
}

/// `deeptrain inspect PATH`: whether it succeeded, and stdout + stderr.
fn inspect_cli(path: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .arg("inspect")
        .arg(path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn inspect_and_resume_accept_and_refuse_the_same_edited_state() {
    let (run, _) = finished_run("ckpt-edited-state");
    let all = checkpoint::list(&run).unwrap();
    let newest = all.last().unwrap().clone();
    let previous = all[all.len() - 2].clone();
    let state_path = newest.join(STATE_FILE);
    let original = std::fs::read(&state_path).unwrap();
    let meta = checkpoint::decode_state(&state_path, &original).unwrap();
    meta.validate().unwrap();
    type Edit = Box<dyn Fn(&mut checkpoint::CheckpointMeta)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "a history column short",
            Box::new(|m| {
                let col = m.state.train_history.metrics.values_mut().next().unwrap();
                col.pop();
            }),
            "train_history: column",
        ),
        (
            "times_validated off",
            Box::new(|m| m.state.times_validated += 1),
            "times_validated",
        ),
        (
            "an epoch end too many",
            Box::new(|m| m.state.epoch_ends.push(0)),
            "epoch_ends",
        ),
        (
            "a row after batches_fit",
            Box::new(|m| m.state.batches_fit -= 1),
            "but batches_fit is",
        ),
        (
            "best validation out of range",
            Box::new(|m| m.state.best.as_mut().unwrap().validation = 99),
            "best: validation 99",
        ),
        (
            "a tensor file listed twice",
            Box::new(|m| m.files.push(m.files[0].clone())),
            "listed 2 times",
        ),
        (
            "a callback state that is not JSON",
            Box::new(|m| m.callbacks.push(("early_stopping".into(), "{oops".into()))),
            "state of callback early_stopping",
        ),
        (
            "a job config that does not parse",
            Box::new(|m| {
                let mut job: serde_json::Value =
                    serde_json::from_str(m.job_config.as_ref().unwrap()).unwrap();
                job["train"]["epochs"] = serde_json::json!("two");
                m.job_config = Some(job.to_string());
            }),
            "epochs",
        ),
    ];
    for (what, edit, says) in cases {
        let mut edited = meta.clone();
        edit(&mut edited);
        std::fs::write(&state_path, checkpoint::encode_state(&edited).unwrap()).unwrap();
        // The checkpoint itself: both refuse, saying the same thing.
        let resumed = err_of(Trainer::resume(&newest), what).to_string();
        let (ok, inspected) = inspect_cli(&newest);
        assert!(!ok, "{what}: inspect accepted it:\n{inspected}");
        assert!(resumed.contains(says), "{what}: resume said {resumed}");
        assert!(inspected.contains(says), "{what}: inspect said {inspected}");
        // The run: both skip it for the previous checkpoint, or both refuse the run.
        let resumed = Trainer::resume(&run).map(|t| t.last_checkpoint().map(Path::to_path_buf));
        let (ok, inspected) = inspect_cli(&run);
        assert_eq!(resumed.is_ok(), ok, "{what}: {inspected}");
        if let Ok(dir) = resumed {
            assert_eq!(dir.as_deref(), Some(previous.as_path()), "{what}");
            assert!(
                inspected.contains(&previous.display().to_string()),
                "{what}"
            );
        }
    }
    std::fs::write(&state_path, &original).unwrap();
    let (ok, inspected) = inspect_cli(&run);
    assert!(
        ok && inspected.contains(&newest.display().to_string()),
        "{inspected}"
    );
}

/// Every checkpoint of a run as (name, state without wall times, tensor file bytes).
fn all_checkpoints(run: &Path) -> Vec<(String, Vec<u8>, Vec<Vec<u8>>)> {
    let mut dirs = checkpoint::list(run).unwrap();
    dirs.push(run.join(checkpoint::BEST_DIR));
    dirs.iter()
        .map(|d| {
            let state = checkpoint::load(d).unwrap().meta.state;
            let files = [MODEL_FILE, OPTIMIZER_FILE, checkpoint::CARRIED_FILE]
                .iter()
                .map(|f| std::fs::read(d.join(f)).unwrap())
                .collect();
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            (name, state_bytes(&state), files)
        })
        .collect()
}

/// Periodic and `best/` checkpoints written on the background thread hold bitwise what
/// the same saves written on the training thread hold, every one of them, while the run
/// goes on changing the weights in place right after each save.
#[test]
fn background_saves_hold_the_same_bits_as_saves_on_the_training_thread() {
    let mut runs = Vec::new();
    for background in [true, false] {
        let run = scratch(&format!("ckpt-background-{background}"));
        let mut job = small_job(&run);
        job.train.checkpoint_every = Every::Batches(3);
        job.train.keep_last = 100;
        job.train.save_in_background = background;
        let mut trainer = job.build_trainer().unwrap();
        assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
        runs.push(all_checkpoints(&run));
    }
    assert!(runs[0].len() > 10, "{} checkpoints", runs[0].len());
    assert_eq!(runs[0].len(), runs[1].len());
    for (a, b) in runs[0].iter().zip(&runs[1]) {
        assert_eq!(a.0, b.0);
        assert!(a == b, "{} differs", a.0);
    }
}

/// `queue_checkpoint` returns before the checkpoint has landed, with its directory; it
/// holds the run as it stood then, not as it is when written.
#[test]
fn a_queued_checkpoint_holds_the_run_as_it_stood_when_queued() {
    let run = scratch("ckpt-queued");
    let mut job = small_job(&run);
    job.train.epochs = 1;
    let mut trainer = job.build_trainer().unwrap();
    trainer.fit().unwrap();
    let queued = trainer.queue_checkpoint().unwrap();
    let at_queue = state_bytes(&trainer.state);
    // Training on changes the weights and the state in place at once.
    trainer.config.epochs = 2;
    trainer.fit().unwrap();
    let landed = checkpoint::load(&queued).unwrap();
    assert_eq!(state_bytes(&landed.meta.state), at_queue);
    // The same run saved on the training thread at that point.
    let other = scratch("ckpt-queued-sync");
    let mut job = small_job(&other);
    job.train.epochs = 1;
    let mut reference = job.build_trainer().unwrap();
    reference.fit().unwrap();
    let sync = reference.save_checkpoint().unwrap();
    for f in [MODEL_FILE, OPTIMIZER_FILE] {
        assert_eq!(
            std::fs::read(queued.join(f)).unwrap(),
            std::fs::read(sync.join(f)).unwrap(),
            "{f}"
        );
    }
}

/// A background save that fails stops the run with an error naming the path, and `fit`
/// returns no earlier than the save's end; the run directory keeps no half checkpoint.
#[test]
fn a_failed_background_save_stops_the_run_with_its_error() {
    let run = scratch("ckpt-background-fails");
    let mut job = small_job(&run);
    job.train.checkpoint_every = Every::Batches(3);
    std::fs::create_dir_all(&run).unwrap();
    // `checkpoints` is a file: no checkpoint can be written.
    std::fs::write(run.join(checkpoint::CHECKPOINTS_DIR), b"in the way").unwrap();
    let mut trainer = job.build_trainer().unwrap();
    let e = err_of(trainer.fit(), "fit with checkpoints/ a file").to_string();
    assert!(
        e.contains(&format!("{}", run.join("checkpoints").display())),
        "{e}"
    );
    // The first save (batch 3) fails; the run goes on at most until it has landed, not
    // to its end (2 epochs of 1797 * 0.8 / 64 batches).
    assert!(
        (3..40).contains(&trainer.state.batches_fit),
        "stopped at batch {}",
        trainer.state.batches_fit
    );
    assert_eq!(
        std::fs::read(run.join(checkpoint::CHECKPOINTS_DIR)).unwrap(),
        b"in the way"
    );
}
