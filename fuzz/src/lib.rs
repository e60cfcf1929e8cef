//! The bodies of the fuzz targets (issue 14), one function per target, in one place for both
//! of their callers: `fuzz/fuzz_targets/*.rs` (cargo-fuzz on nightly) and
//! `tests/it/fuzz_corpus.rs` (stable CI, which replays the committed corpus through them).
//!
//! Each body hands its bytes to the library's public reading API, the path a user's file
//! takes: a reader that takes a path gets them in a fresh temporary directory. Then it uses
//! what was read the way the library's callers do. A refused input is fine (the function
//! returns `false`); a panic, a sanitizer report, a hang or an allocation past libFuzzer's
//! limit is a bug. The few `assert!`s state promises the library documents (a written
//! `.npy` reads back the same, a resolved job config reads back equal), so breaking one is
//! a bug too.

use std::fs;
use std::io::Write;
use std::path::Path;

use deeptrain::checkpoint::{
    self, FileDigest, CARRIED_FILE, CHECKPOINTS_DIR, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE,
};
use deeptrain::data_loaders::array::ArrayData;
use deeptrain::data_loaders::csv_file::{parse_csv, CsvOptions, LabelColumn};
use deeptrain::data_loaders::idx::read_idx;
use deeptrain::data_loaders::npy::{read_npy, write_npy};
use deeptrain::data_loaders::safetensors_file::read_safetensors;
use deeptrain::JobConfig;
use sha2::{Digest, Sha256};

/// A target: its name and its body (true when the input was accepted).
pub type Target = (&'static str, fn(&[u8]) -> bool);

/// Every target by name: `fuzz/fuzz_targets/NAME.rs` runs it, `fuzz/corpus/NAME/` holds
/// its corpus. A body returns whether the library accepted the input.
pub const TARGETS: [Target; 6] = [
    ("checkpoint", checkpoint),
    ("npy", npy),
    ("idx", idx),
    ("safetensors", safetensors),
    ("csv", csv),
    ("job_config", job_config),
];

/// A fresh temporary directory for the files of one input (removed when dropped).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("deeptrain-fuzz-")
        .tempdir()
        .expect("create a temporary directory")
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Splits an input into `N` parts: each but the last is its length (u32, little-endian,
/// cut to what is left) and its bytes; the last part is the rest. The inverse of
/// [`pack`]; any bytes split somehow, so every mutation of an input is an input.
pub fn sections<const N: usize>(mut data: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    for part in out.iter_mut().take(N - 1) {
        let mut len = [0u8; 4];
        let head = data.len().min(4);
        len[..head].copy_from_slice(&data[..head]);
        data = &data[head..];
        let len = (u32::from_le_bytes(len) as usize).min(data.len());
        (*part, data) = data.split_at(len);
    }
    out[N - 1] = data;
    out
}

/// The input that [`sections`] splits into `parts` (a mode byte goes in front of it).
pub fn pack(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            let len = u32::try_from(part.len()).expect("a part under 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(part);
    }
    out
}

/// `state.bin` bytes around a bincode `payload`: the format-3 header (magic, version,
/// payload length, SHA-256 of those 20 bytes and the payload) that `checkpoint::load`
/// verifies before it decodes anything. Written out here because the library only
/// encodes whole `CheckpointMeta`s; `tests/it/fuzz_corpus.rs` checks that it gives the
/// library's own bytes for a real checkpoint.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(52 + payload.len());
    out.extend_from_slice(b"DTCKPT\0\0");
    out.extend_from_slice(&checkpoint::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let digest = Sha256::new()
        .chain_update(&out)
        .chain_update(payload)
        .finalize();
    out.extend_from_slice(&digest);
    out.extend_from_slice(payload);
    out
}

/// `payload` decoded as the library decodes `state.bin`, with the digests of `files`
/// recorded in place of its own, encoded again: a state whose tensor files pass the
/// checksums, so the fuzzed safetensors bytes reach the tensor decoding.
fn reseal(payload: &[u8], files: &[(&str, &[u8])]) -> Option<Vec<u8>> {
    let mut meta = checkpoint::decode_state(Path::new(STATE_FILE), &seal(payload)).ok()?;
    meta.files = files
        .iter()
        .map(|(name, bytes)| FileDigest {
            name: name.to_string(),
            len: bytes.len() as u64,
            sha256: Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        })
        .collect();
    checkpoint::encode_state(&meta).ok()
}

/// A checkpoint directory `RUN/checkpoints/ckpt-000001` made of the input, loaded the way
/// `resume` and `inspect` load one (`checkpoint::load_latest` on the run directory), then
/// used as `inspect` uses it (status, summary, JSON, the saved job config).
///
/// Input: a mode byte, then [`sections`] `state`, `model`, `optimizer` and `carried`, the
/// last three written as the three safetensors files. Mode % 3 says what `state.bin` is:
/// 0 `state` itself; 1 `state` as the bincode payload in a valid header ([`seal`]), so
/// the checksum passes and the decoding and [`CheckpointMeta::validate`] are reached;
/// 2 the same with the digests of the three files recorded ([`reseal`]), so the tensor
/// files are decoded as well.
///
/// [`CheckpointMeta::validate`]: deeptrain::checkpoint::CheckpointMeta::validate
pub fn checkpoint(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let [state, model, optimizer, carried] = sections::<4>(rest);
    let tmp = scratch();
    let run = tmp.path().join("run");
    let dir = run.join(CHECKPOINTS_DIR).join("ckpt-000001");
    fs::create_dir_all(&dir).expect("create the checkpoint directory");
    let files = [
        (MODEL_FILE, model),
        (OPTIMIZER_FILE, optimizer),
        (CARRIED_FILE, carried),
    ];
    for (name, bytes) in files {
        write(&dir.join(name), bytes);
    }
    let state_bin = match mode % 3 {
        0 => state.to_vec(),
        1 => seal(state),
        _ => reseal(state, &files).unwrap_or_else(|| seal(state)),
    };
    write(&dir.join(STATE_FILE), &state_bin);
    let Ok(ckpt) = checkpoint::load_latest(&run) else {
        return false;
    };
    let state = &ckpt.meta.state;
    let _ = deeptrain::cli::inspect_json(&ckpt.dir, state);
    let _ = deeptrain::report::data::status_line(state, Some(ckpt.meta.saved_because));
    let _ = state.summary(ckpt.meta.run.epochs);
    let _ = checkpoint::run_dir_of(&ckpt.dir);
    ckpt.meta.job_config.is_none() || JobConfig::from_checkpoint(&ckpt).is_ok()
}

/// Uses an array as training does: its first samples (and the same in reverse order, the
/// way a shuffled batch gathers them) as f32, and as class ids when it has one value per
/// sample.
fn use_array(a: &ArrayData) {
    let mut out = Vec::new();
    let n = a.num_samples().min(4);
    a.range_f32(0, n, &mut out);
    let reversed: Vec<usize> = (0..n).rev().collect();
    a.gather_f32(&reversed, &mut out);
    if a.sample_len() == 1 {
        let _ = a.to_u32_labels();
    }
    let _ = a.check_mapped();
}

/// The input as a `.npy` file (`read_npy`); an array read is written back with
/// `write_npy` and must read back the same.
pub fn npy(data: &[u8]) -> bool {
    let tmp = scratch();
    let path = tmp.path().join("data.npy");
    write(&path, data);
    let Ok(a) = read_npy(&path) else {
        return false;
    };
    use_array(&a);
    let copy = tmp.path().join("copy.npy");
    write_npy(&copy, a.dtype, &a.shape, a.raw()).expect("an array read writes as .npy");
    let b = read_npy(&copy).expect("a written .npy reads back");
    assert_eq!(
        (b.dtype, &b.shape, b.raw()),
        (a.dtype, &a.shape, a.raw()),
        "a .npy written from a read array reads back different"
    );
    true
}

/// gzip of `data`, as MNIST ships its idx files.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// The input as an idx file (`read_idx`, with a fresh cache directory). A mode byte first:
/// mode % 3 = 0 the rest is `data-idx3-ubyte`; 1 it is gzipped into `data-idx3-ubyte.gz`
/// (so the decompress-and-cache path sees valid gzip streams of fuzzed idx files); 2 it
/// is written as `data-idx3-ubyte.gz` itself (fuzzed gzip). A `.gz` that reads is read
/// again, from the cache, and must give the same array.
pub fn idx(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let tmp = scratch();
    let cache = tmp.path().join("cache");
    let (name, bytes) = match mode % 3 {
        0 => ("data-idx3-ubyte", rest.to_vec()),
        1 => ("data-idx3-ubyte.gz", gzip(rest)),
        _ => ("data-idx3-ubyte.gz", rest.to_vec()),
    };
    let path = tmp.path().join(name);
    write(&path, &bytes);
    let Ok(a) = read_idx(&path, &cache) else {
        return false;
    };
    use_array(&a);
    if name.ends_with(".gz") {
        let b = read_idx(&path, &cache).expect("a .gz that read once reads from its cache");
        assert_eq!(
            (b.dtype, &b.shape, b.raw()),
            (a.dtype, &a.shape, a.raw()),
            "an idx .gz reads back different from its cache"
        );
    }
    true
}

/// The input as a `.safetensors` file (`read_safetensors`); every tensor read is used.
pub fn safetensors(data: &[u8]) -> bool {
    let tmp = scratch();
    let path = tmp.path().join("data.safetensors");
    write(&path, data);
    let Ok(tensors) = read_safetensors(&path) else {
        return false;
    };
    tensors.values().for_each(use_array);
    true
}

/// The input as a CSV file (`parse_csv`, the bytes entry of `read_csv`), under options
/// chosen by a mode byte: bits 0-1 the header (auto, yes, no), bits 2-4 the label column
/// (last, first, index 0, index 2, name `label`, none, index 1000), bits 5-6 the delimiter
/// (`,` `;` tab space), bit 7 gzip the rest first (`.csv.gz`).
pub fn csv(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let opts = CsvOptions {
        has_header: [None, Some(true), Some(false), None][usize::from(mode & 3)],
        label_column: match (mode >> 2) & 7 {
            0 => LabelColumn::Last,
            1 => LabelColumn::First,
            2 => LabelColumn::Index(0),
            3 => LabelColumn::Index(2),
            4 => LabelColumn::Name("label".into()),
            5 => LabelColumn::None,
            6 => LabelColumn::Index(1000),
            _ => LabelColumn::Last,
        },
        delimiter: [b',', b';', b'\t', b' '][usize::from((mode >> 5) & 3)],
    };
    let bytes = if mode & 0x80 != 0 {
        gzip(rest)
    } else {
        rest.to_vec()
    };
    let Ok((x, y)) = parse_csv(&bytes, Path::new("data.csv"), opts) else {
        return false;
    };
    use_array(&x);
    if let Some(y) = &y {
        use_array(y);
    }
    true
}

/// The input as a JSON job config (`JobConfig::from_json_str`, what `deeptrain train
/// CONFIG` and `resume` parse); a config that parses must read back equal from its
/// resolved JSON (`to_json`), as run directories rely on.
pub fn job_config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let origin = Path::new("job.json");
    let Ok(job) = JobConfig::from_json_str(text, origin) else {
        return false;
    };
    let again = JobConfig::from_json_str(&job.to_json(), origin)
        .unwrap_or_else(|e| panic!("the resolved config does not read back: {e}"));
    assert_eq!(again, job, "the resolved config reads back different");
    true
}
