//! Stable CI's share of the fuzzing (issue 14): every committed corpus file
//! (`fuzz/corpus/TARGET/*`) goes through the same target bodies cargo-fuzz runs
//! (`fuzz/src/lib.rs`, included here), and none may panic. Real files of each format must be
//! accepted by their target, so a target that stopped reaching its reader would fail here.
//! The seeds of the corpus are these real files (`write_fuzz_seeds`, ignored, writes them).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use deeptrain::checkpoint::{self, CARRIED_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE};
use deeptrain::data_loaders::array::DType;
use deeptrain::data_loaders::npy::write_npy;
use deeptrain::registry::{Component, MlpArgs};
use deeptrain::JobConfig;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use sha2::Digest;

use crate::common::scratch;

#[path = "../../fuzz/src/lib.rs"]
mod targets;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// A real checkpoint of a tiny run (an MLP with 2 hidden units, one epoch of 3 batches)
/// as its four files: state, model, optimizer, carried. Trained once per test binary.
fn real_checkpoint() -> &'static [Vec<u8>; 4] {
    static FILES: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    FILES.get_or_init(train_tiny_run)
}

fn train_tiny_run() -> [Vec<u8>; 4] {
    let run = scratch("fuzz_seed_run");
    let mut job = JobConfig::default();
    job.data.batch_size = 700;
    job.model = Component::with_args(
        "mlp",
        MlpArgs {
            hidden: vec![2],
            ..MlpArgs::default()
        },
    )
    .unwrap();
    job.train.epochs = 1;
    job.train.run_dir = run.clone();
    job.logging.tensorboard = false;
    job.logging.csv = false;
    job.logging.progress = false;
    job.train.report = false;
    job.build_trainer().unwrap().fit().unwrap();
    let dir = checkpoint::list(&run).unwrap().pop().unwrap();
    [STATE_FILE, MODEL_FILE, OPTIMIZER_FILE, CARRIED_FILE]
        .map(|f| std::fs::read(dir.join(f)).unwrap())
}

fn npy_bytes(dtype: DType, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    write_npy(&path, dtype, shape, data).unwrap();
    std::fs::read(path).unwrap()
}

/// A `.npy` by hand, in the forms other writers use: fortran order (allowed for 1-D), a
/// Python 2 long, no trailing comma, no padding to 64 bytes.
fn npy_by_hand() -> Vec<u8> {
    let header = "{'descr':'|u1','fortran_order':True,'shape':(3L,)}\n";
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&[7, 8, 9]);
    out
}

fn idx_bytes(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// `vals` as bytes, each by `f` (`to_le_bytes`, or `to_be_bytes` for idx).
fn bytes<T: Copy, const N: usize>(vals: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    vals.iter().flat_map(|&v| f(v)).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Real files of every format as inputs of their targets: (target, seed name, input).
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();

    let [state, model, optimizer, carried] = real_checkpoint();
    let payload = &state[52..];
    for (mode, name, state_part) in [
        (0u8, "tiny-run", &state[..]),
        (1, "tiny-run-payload", payload),
        (2, "tiny-run-resealed", payload),
    ] {
        let mut input = vec![mode];
        input.extend(targets::pack(&[state_part, model, optimizer, carried]));
        out.push(("checkpoint", name, input));
    }

    let f32s = bytes(&[1.0f32, -2.5, 3.25, 0.0, 1e-3, 6.0], f32::to_le_bytes);
    out.push(("npy", "f32-3x2", npy_bytes(DType::F32, &[3, 2], &f32s)));
    out.push((
        "npy",
        "u8-labels",
        npy_bytes(DType::U8, &[4], &[0, 1, 2, 1]),
    ));
    let i64s = bytes(&[3i64, 0, 5], i64::to_le_bytes);
    out.push(("npy", "i64-3x1", npy_bytes(DType::I64, &[3, 1], &i64s)));
    let f16s = bytes(
        &[0.5f32, -1.0, 2.0, 65504.0].map(half::f16::from_f32),
        half::f16::to_le_bytes,
    );
    out.push(("npy", "f16-2x2", npy_bytes(DType::F16, &[2, 2], &f16s)));
    out.push(("npy", "fortran-u8-by-hand", npy_by_hand()));

    let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
    let mut raw = vec![0u8];
    raw.extend(idx_bytes(0x08, &[3, 2, 2], &pixels));
    out.push(("idx", "u8-3x2x2", raw));
    let mut raw = vec![0u8];
    raw.extend(idx_bytes(
        0x0C,
        &[3],
        &bytes(&[1i32, 0, 7], i32::to_be_bytes),
    ));
    out.push(("idx", "i32-labels", raw));
    let mut gzipped_by_target = vec![1u8];
    gzipped_by_target.extend(idx_bytes(
        0x0D,
        &[2, 2],
        &bytes(&[0.5f32, -1.0, 2.0, 3.0], f32::to_be_bytes),
    ));
    out.push(("idx", "f32-2x2-gz", gzipped_by_target));
    let mut gzipped = vec![2u8];
    gzipped.extend(gzip(&idx_bytes(
        0x0E,
        &[2],
        &bytes(&[0.25f64, 8.0], f64::to_be_bytes),
    )));
    out.push(("idx", "f64-2-gz-file", gzipped));

    let i64s = bytes(&[1i64, 0], i64::to_le_bytes);
    let f64s = bytes(&[0.1f64, 0.2, 0.3, 0.4], f64::to_le_bytes);
    let tensors = vec![
        ("x", TensorView::new(Dtype::F32, vec![2, 3], &f32s).unwrap()),
        ("y", TensorView::new(Dtype::I64, vec![2], &i64s).unwrap()),
    ];
    let st = safetensors::serialize(tensors, None).unwrap();
    out.push(("safetensors", "f32-x-i64-y", st));
    let img = [0u8, 255, 3, 4, 5, 6, 7, 8];
    let tensors = vec![
        ("d", TensorView::new(Dtype::F64, vec![2, 2], &f64s).unwrap()),
        ("h", TensorView::new(Dtype::F16, vec![2, 2], &f16s).unwrap()),
        (
            "img",
            TensorView::new(Dtype::U8, vec![2, 2, 2], &img).unwrap(),
        ),
    ];
    out.push((
        "safetensors",
        "f64-f16-u8",
        safetensors::serialize(tensors, None).unwrap(),
    ));
    let i32s = bytes(&[4i32, -1, 0], i32::to_le_bytes);
    let tensors = vec![
        (
            "labels",
            TensorView::new(Dtype::I32, vec![3], &i32s).unwrap(),
        ),
        (
            "none",
            TensorView::new(Dtype::F32, vec![0, 3], &[]).unwrap(),
        ),
    ];
    let meta = [("format".to_string(), "pt".to_string())].into();
    out.push((
        "safetensors",
        "i32-empty-metadata",
        safetensors::serialize(tensors, Some(meta)).unwrap(),
    ));

    let csv = |mode: u8, text: &str| {
        let mut input = vec![mode];
        input.extend_from_slice(text.as_bytes());
        input
    };
    // Mode bits: header (0-1), label column (2-4), delimiter (5-6), gzip (7).
    out.push((
        "csv",
        "header-last-label",
        csv(0, "a,b,label\n1,2,0\n3,4.5,1\n-1e3,0.25,2\n"),
    ));
    out.push((
        "csv",
        "semicolon-first-label",
        csv(2 | 1 << 2 | 1 << 5, "0;1.5;2\n1;2.5;3\n\n1;-0;7\n"),
    ));
    out.push((
        "csv",
        "tab-quoted-named-label",
        csv(
            1 | 4 << 2 | 2 << 5,
            "\u{feff}\"x\ty\"\tlabel\t\"z\"\"\"\n 1\t0\t2 \n3\t1\t4\n",
        ),
    ));
    out.push((
        "csv",
        "gzip-regression",
        csv(0x80, "x,y,t\n1,2,0.5\n3,4,-1.25\n"),
    ));

    let readme = include_str!("../../README.md");
    let start = readme.find("```json\n{ \"name\": \"digits\"").unwrap() + "```json\n".len();
    let end = start + readme[start..].find("```").unwrap();
    out.push((
        "job_config",
        "readme",
        readme.as_bytes()[start..end].to_vec(),
    ));
    out.push((
        "job_config",
        "mnist",
        include_bytes!("../../examples/configs/mnist.json").to_vec(),
    ));
    out.push(("job_config", "empty-object", b"{}".to_vec()));
    out.push((
        "job_config",
        "default-resolved",
        JobConfig::default().to_json().into_bytes(),
    ));
    out.push((
        "job_config",
        "sgd-batches",
        br#"{"optimizer": {"kind": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true},
             "train": {"validate_every": {"batches": 10}, "schedule": {"kind": "constant"}},
             "logging": {"health": "skip"}, "device": "auto"}"#
            .to_vec(),
    ));
    out
}

/// Runs `target` on every input, catching panics: the names of the inputs that panicked,
/// and how many were accepted.
fn replay(target: fn(&[u8]) -> bool, inputs: &[(String, Vec<u8>)]) -> (Vec<String>, usize) {
    let mut panicked = Vec::new();
    let mut accepted = 0;
    for (name, bytes) in inputs {
        match catch_unwind(AssertUnwindSafe(|| target(bytes))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panicked.push(name.clone()),
        }
    }
    (panicked, accepted)
}

#[test]
fn every_committed_corpus_file_replays_without_a_panic() {
    let mut failures = Vec::new();
    for (name, target) in targets::TARGETS {
        let dir = corpus_dir(name);
        let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let path = e.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                (path.display().to_string(), bytes)
            })
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no corpus", dir.display());
        let (panicked, accepted) = replay(target, &inputs);
        failures.extend(panicked);
        // The corpus reaches the reader's success path, not only its errors.
        assert!(
            accepted > 0,
            "no input of {} is accepted ({} inputs)",
            dir.display(),
            inputs.len()
        );
    }
    assert!(failures.is_empty(), "panicked on: {failures:#?}");
}

#[test]
fn real_files_are_accepted_by_their_targets() {
    let seeds = seeds();
    for (name, target) in targets::TARGETS {
        let inputs: Vec<(String, Vec<u8>)> = seeds
            .iter()
            .filter(|(t, _, _)| *t == name)
            .map(|(_, seed, bytes)| (seed.to_string(), bytes.clone()))
            .collect();
        assert!(inputs.len() >= 3, "{name}: {} seeds", inputs.len());
        let (panicked, accepted) = replay(target, &inputs);
        assert!(panicked.is_empty(), "{name} panicked on {panicked:?}");
        assert_eq!(accepted, inputs.len(), "{name}: a real file was refused");
    }
}

#[test]
fn the_target_helpers_agree_with_the_library() {
    // `seal` writes the header the library writes.
    let [state, model, optimizer, carried] = real_checkpoint();
    assert_eq!(&targets::seal(&state[52..]), state);
    // `sections` splits what `pack` joins, and cuts a length past the end.
    let parts: [&[u8]; 4] = [state, model, optimizer, carried];
    assert_eq!(targets::sections::<4>(&targets::pack(&parts)), parts);
    assert_eq!(
        targets::sections::<3>(&[2, 0, 0, 0, 9, 9, 1, 0, 0, 0, 7, 5, 5]),
        [&[9u8, 9][..], &[7][..], &[5, 5][..]]
    );
    assert_eq!(
        targets::sections::<2>(&[200, 0, 0, 0, 5]),
        [&[5u8][..], &[][..]]
    );
}

/// Found by fuzzing (fuzz/corpus/checkpoint/regression-bincode-string-capacity-overflow): a
/// `state.bin` whose checksum is right but which declares a string of a TiB made bincode
/// allocate it (an abort, or a capacity-overflow panic for longer ones). Now it is a corrupt
/// checkpoint.
#[test]
fn a_huge_length_in_state_bin_is_an_error_not_an_allocation() {
    let path = Path::new("ckpt/state.bin");
    let mut meta = checkpoint::decode_state(path, &real_checkpoint()[0]).unwrap();
    meta.model_name = "MARKER-MODEL-NAME".into();
    let payload = checkpoint::encode_state(&meta).unwrap()[52..].to_vec();
    let at = payload
        .windows(17)
        .position(|w| w == b"MARKER-MODEL-NAME")
        .unwrap();
    assert_eq!(payload[at - 1], 17, "a one-byte varint length");
    // The length as bincode's 8-byte varint (tag 253): 2^40 bytes.
    let mut bad = payload[..at - 1].to_vec();
    bad.push(253);
    bad.extend_from_slice(&(1u64 << 40).to_le_bytes());
    bad.extend_from_slice(&payload[at..]);
    let e = checkpoint::decode_state(path, &targets::seal(&bad))
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        format!(
            "ckpt/state.bin: corrupt checkpoint: state does not decode: it declares more data \
             than its {} bytes can hold (a corrupt length)",
            bad.len()
        )
    );
}

/// Found with the checkpoint fuzz target
/// (fuzz/corpus/checkpoint/regression-empty-overflowing-tensor): a checkpoint tensor of
/// shape `(0, 2^33, 2^33)` is empty, and candle computed its strides with an overflowing
/// product (a panic in debug builds, wrapped strides in release).
#[test]
fn a_checkpoint_tensor_of_overflowing_shape_is_refused() {
    let dir = scratch("fuzz_overflowing_tensor");
    let [state, _, optimizer, carried] = real_checkpoint();
    let header = br#"{"w":{"dtype":"F32","shape":[0,8589934592,8589934592],"data_offsets":[0,0]}}"#;
    let mut model = (header.len() as u64).to_le_bytes().to_vec();
    model.extend_from_slice(header);
    let files = [
        (MODEL_FILE, &model),
        (OPTIMIZER_FILE, optimizer),
        (CARRIED_FILE, carried),
    ];
    let mut meta = checkpoint::decode_state(Path::new(STATE_FILE), state).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
        let digest = meta.files.iter_mut().find(|d| d.name == name).unwrap();
        digest.len = bytes.len() as u64;
        digest.sha256 = sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    }
    let state_bin = checkpoint::encode_state(&meta).unwrap();
    std::fs::write(dir.join(STATE_FILE), state_bin).unwrap();
    let e = checkpoint::load(&dir).err().unwrap().to_string();
    assert_eq!(
        e,
        format!(
            "{}: corrupt checkpoint: tensor `w` has shape [0, 8589934592, 8589934592], too \
             large to address",
            dir.join(MODEL_FILE).display()
        )
    );
}

/// Writes the seeds into `fuzz/corpus/TARGET/seed-NAME` (run once, before fuzzing:
/// `cargo test --release --test it write_fuzz_seeds -- --ignored`).
#[test]
#[ignore = "writes into the source tree"]
fn write_fuzz_seeds() {
    for (target, name, bytes) in seeds() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
