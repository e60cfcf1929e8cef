//! TensorBoard event files, end to end: what `EventWriter` writes is read back by the
//! strict test reader (`support/tb_reader.rs`) and, where Python has `tensorboard`, by
//! TensorBoard's own reader; the bytes are pinned by digests.

use std::path::{Path, PathBuf};
use std::process::Command;

use deeptrain::callbacks::tensorboard::{EventWriter, Histogram};
use sha2::{Digest, Sha256};

use crate::common::scratch;
use crate::support::tb_reader::{
    read_events, read_records, read_scalars, DecodedValue, ReadError, ValueData,
};

/// Fixed clock ticking 1 s per call, for deterministic files.
fn ticking_clock() -> impl FnMut() -> f64 + Send + 'static {
    let mut t = 1_700_000_000.0;
    move || {
        t += 1.0;
        t
    }
}

/// Writes the sample run used by several tests (and the Python interop).
fn write_sample(dir: &Path) -> PathBuf {
    let mut w = EventWriter::create_with_clock(dir, ticking_clock()).expect("create");
    for step in 0..5i64 {
        w.add_scalar("loss", 1.0 / (step as f64 + 1.0), step)
            .expect("scalar");
        w.add_scalar("acc", 0.1 * step as f64, step)
            .expect("scalar");
    }
    let values = [-2.5f32, -0.0, 0.0, 0.001, 1.0, 1.0, 3.0, 100.0, f32::NAN];
    w.add_histogram("weights", &values, 4).expect("histogram");
    w.add_text("notes", "hello **tensorboard**", 4)
        .expect("text");
    let path = w.path().to_path_buf();
    drop(w);
    path
}

/// Edge cases the sample does not hit: negative/extreme steps, 0.0 and -0.0
/// scalars, explicit wall times, a precomputed histogram, empty and NaN
/// histograms, non-ASCII and empty tags/texts, a replaced clock.
fn write_edge_sample(dir: &Path) -> PathBuf {
    let mut w = EventWriter::create_with_clock(dir, ticking_clock()).expect("create");
    w.add_scalar("zero", 0.0, 0).expect("scalar");
    w.add_scalar("neg0", -0.0, -1).expect("scalar");
    w.add_scalar_at("big", 1e30, i64::MAX, 0.0).expect("scalar");
    w.add_scalar_at("", f64::NAN, i64::MIN, -0.0)
        .expect("scalar");
    w.add_histogram("empty", &[], 7).expect("hist");
    w.add_histogram("nan", &[f32::NAN, f32::INFINITY], 8)
        .expect("hist");
    w.add_histogram_at("tiny", &[1e-30, -1e-30, 0.0, f32::MAX, f32::MIN], 9, 12.5)
        .expect("hist");
    let h = Histogram::from_values(&[0.5, 0.25, -7.0]);
    w.add_histogram_proto_at("proto", &h, 10, 13.0)
        .expect("hist");
    w.set_clock(|| 42.0);
    w.add_text("ünï/cødé", "", 11).expect("text");
    w.add_text_at("t", "line1\nline2 ✓", 12, 1.0).expect("text");
    let path = w.path().to_path_buf();
    drop(w);
    path
}

/// Event files are part of the bit-for-bit promise: these digests were taken from the
/// writer before it was split into writer/record/proto/histogram (and before the
/// CRC-32C moved to the `crc32c` crate). Any change here changes event files.
#[test]
fn event_file_bytes_are_unchanged() {
    let dir = scratch("tb-events-golden");
    for (what, path, len, digest) in [
        (
            "sample",
            write_sample(&dir),
            798,
            "79484020d3427b8198d2c204a4ae186ca14ab7a4d004387ce2aad1cc72e11db3",
        ),
        (
            "edge sample",
            write_edge_sample(&dir),
            816,
            "6415c4c418c931029079aa219aad3432e0f3c466e3f8f850d736dc254d0ea7d0",
        ),
    ] {
        let bytes = std::fs::read(&path).expect("read event file");
        assert_eq!(bytes.len(), len, "{what}: {}", path.display());
        assert_eq!(
            format!("{:x}", Sha256::digest(&bytes)),
            digest,
            "{what}: {}",
            path.display()
        );
    }
}

#[test]
fn deterministic_bytes_with_fixed_clock() {
    let dir = scratch("tb-events-det");
    let a = std::fs::read(write_sample(&dir)).expect("read a");
    let b = std::fs::read(write_sample(&dir)).expect("read b");
    assert_eq!(a, b);
}

#[test]
fn round_trip_scalars_histogram_text() {
    let dir = scratch("tb-events-roundtrip");
    let path = write_sample(&dir);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    assert!(name.starts_with("events.out.tfevents."), "{name}");

    let records = read_records(&path).expect("records");
    assert_eq!(records.len(), 1 + 10 + 1 + 1);

    let scalars = read_scalars(&path).expect("scalars");
    assert_eq!(scalars.len(), 10);
    for step in 0..5i64 {
        let i = step as usize * 2;
        assert_eq!(
            scalars[i],
            ("loss".to_string(), step, (1.0 / (step as f64 + 1.0)) as f32)
        );
        assert_eq!(
            scalars[i + 1],
            ("acc".to_string(), step, (0.1 * step as f64) as f32)
        );
    }

    let events = read_events(&path).expect("events");
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    assert_eq!(events[0].wall_time, 1_700_000_001.0);
    assert_eq!(events[1].wall_time, 1_700_000_002.0);

    let ValueData::Histogram(h) = &events[11].values[0].data else {
        panic!("expected histogram, got {:?}", events[11]);
    };
    assert_eq!(events[11].values[0].tag, "weights");
    assert_eq!(events[11].step, 4);
    assert_eq!(h.num, 8.0); // NaN skipped
    assert_eq!((h.min, h.max), (-2.5, 100.0));
    assert!((h.sum - (-2.5 + 0.001f32 as f64 + 1.0 + 1.0 + 3.0 + 100.0)).abs() < 1e-12);
    assert_eq!(h.bucket.iter().sum::<f64>(), 8.0);
    assert_eq!(h.bucket.len(), h.bucket_limit.len());
    assert!(h.bucket_limit.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        h,
        &Histogram::from_values(&[-2.5, -0.0, 0.0, 0.001, 1.0, 1.0, 3.0, 100.0])
    );

    assert_eq!(
        events[12].values[0],
        DecodedValue {
            tag: "notes".into(),
            data: ValueData::Text("hello **tensorboard**".into())
        }
    );
}

#[test]
fn empty_and_nan_histograms_are_written() {
    let dir = scratch("tb-events-hedge");
    let mut w = EventWriter::create(&dir).expect("create");
    w.add_histogram("empty", &[], 0).expect("empty");
    w.add_histogram("nan", &[f32::NAN], 1).expect("nan");
    w.flush().expect("flush");
    assert_eq!(read_events(w.path()).expect("read").len(), 3);
}

#[test]
fn corrupt_byte_names_offset() {
    let dir = scratch("tb-events-corrupt");
    let path = write_sample(&dir);
    let mut bytes = std::fs::read(&path).expect("read");
    let first_len = read_records(&path).expect("records")[0].len() + 16;
    // Flip a data byte of the second record.
    bytes[first_len + 20] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let err = read_records(&path).expect_err("must fail");
    assert!(
        matches!(err, ReadError::Crc { offset, part: "data", .. } if offset == first_len as u64),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("byte offset {first_len}")), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    // Corrupt the length field instead: caught by the length CRC.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[first_len + 20] ^= 0x01;
    bytes[first_len] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let err = read_scalars(&path).expect_err("must fail");
    assert!(
        matches!(err, ReadError::Crc { part: "length", .. }),
        "{err}"
    );
}

#[test]
fn truncated_file_is_an_error() {
    let dir = scratch("tb-events-trunc");
    let path = write_sample(&dir);
    let bytes = std::fs::read(&path).expect("read");
    let total = read_records(&path)
        .expect("ok")
        .iter()
        .map(|r| r.len() + 16)
        .sum::<usize>();
    assert_eq!(total, bytes.len());
    let last_start = total - (read_records(&path).expect("ok")[12].len() + 16);
    for cut in [bytes.len() - 1, last_start + 5, last_start + 13] {
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let err = read_records(&path).expect_err("must fail");
        assert!(
            matches!(err, ReadError::Truncated { offset, .. } if offset == last_start as u64),
            "{err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[test]
fn read_error_names_the_path() {
    let missing = scratch("tb-events-missing").join("no_such_dir/events");
    let err = read_records(&missing).expect_err("missing");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

/// `tb_events.py` (TensorBoard's strict Python reader, from the shared tools):
/// `$DEEPTRAIN_TB_EVENTS_PY`, else `shared/tools/tb_events.py` in the nearest folder
/// above the crate root that has it (`../shared` in a checkout; further up in a
/// worktree).
fn tb_events_py() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DEEPTRAIN_TB_EVENTS_PY") {
        return Some(PathBuf::from(p));
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .skip(1)
        .map(|d| d.join("shared/tools/tb_events.py"))
        .find(|p| p.is_file())
}

/// Cross-checks our files with TensorBoard's own (strict) Python reader.
/// Skips when tensorboard is not importable.
#[test]
fn tb_events_py_interop() {
    let has_tb = Command::new("python3")
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tb {
        println!("skipped: python3 cannot import tensorboard (pip install tensorboard)");
        return;
    }
    let script = tb_events_py();
    let Some(script) = script.filter(|s| s.is_file()) else {
        panic!(
            "tb_events.py not found ($DEEPTRAIN_TB_EVENTS_PY, or shared/tools/ above {})",
            env!("CARGO_MANIFEST_DIR")
        );
    };
    let dir = scratch("tb-events-interop");
    let path = write_sample(&dir);
    let out = Command::new("python3")
        .arg(&script)
        .arg(&path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["records"], 13, "{json}");
    assert_eq!(json["file_version"], "brain.Event:2", "{json}");
    for (tag, f) in [
        ("loss", (|s: f64| 1.0 / (s + 1.0)) as fn(f64) -> f64),
        ("acc", |s: f64| 0.1 * s),
    ] {
        let series = json["scalars"][tag].as_array().expect("series");
        assert_eq!(series.len(), 5, "{json}");
        for (step, point) in series.iter().enumerate() {
            assert_eq!(point[0].as_i64(), Some(step as i64), "{json}");
            let expected = f64::from(f(step as f64) as f32);
            assert_eq!(point[1].as_f64(), Some(expected), "{tag} {json}");
        }
    }
    assert_eq!(json["histograms"], serde_json::json!(["weights"]), "{json}");
    assert_eq!(json["other"], serde_json::json!(["notes"]), "{json}");
}
