//! Tests of the `.npy` reader and writer: hand-built files for every dtype, odd data
//! offsets, tolerant headers, versions, bad files, and (when NumPy is importable) files
//! written by NumPy itself.

use std::path::{Path, PathBuf};

use super::{read_npy, write_npy};
use crate::data_loaders::array::test_util::test_dir;
use crate::data_loaders::array::{ArrayData, Bytes, DType, FormatError};

/// Builds an npy file by hand (independently of `write_npy`): `pad_to`
/// controls where the data starts, so tests can force odd offsets.
fn npy_bytes(major: u8, header: &str, pad_to: usize, data: &[u8]) -> Vec<u8> {
    let prefix = if major == 1 { 10 } else { 12 };
    let mut h = header.to_string();
    while !(prefix + h.len() + 1).is_multiple_of(pad_to) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.push(major);
    out.push(0);
    if major == 1 {
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn header(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

fn as_f32(a: &ArrayData) -> Vec<f32> {
    let mut out = Vec::new();
    a.range_f32(0, a.num_samples(), &mut out);
    out
}

#[test]
fn every_dtype_round_trips_from_hand_written_files() {
    let dir = test_dir("npy_dtypes");
    let vals = [0.0f64, 1.0, -2.0, 3.5, 100.0, -0.25];
    let cases: [(&str, DType, Vec<u8>); 6] = [
        (
            "<f4",
            DType::F32,
            vals.iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect(),
        ),
        (
            "<f8",
            DType::F64,
            vals.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        ),
        (
            "<f2",
            DType::F16,
            vals.iter()
                .flat_map(|&v| half::f16::from_f64(v).to_le_bytes())
                .collect(),
        ),
        ("|u1", DType::U8, vec![0, 1, 2, 3, 100, 255]),
        (
            "<i4",
            DType::I32,
            [0i32, 1, -2, 3, 100, -7]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        (
            "<i8",
            DType::I64,
            [0i64, 1, -2, 3, 100, -7]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
    ];
    for (descr, dtype, data) in cases {
        let p = write(
            &dir,
            &format!("{}.npy", dtype.name()),
            &npy_bytes(1, &header(descr, "(3, 2)"), 64, &data),
        );
        let a = read_npy(&p).unwrap();
        assert_eq!(a.dtype, dtype);
        assert_eq!(a.shape, [3, 2]);
        assert_eq!(a.raw(), &data[..], "{descr}");
        let Bytes::Mapped { offset, .. } = a.bytes else {
            panic!("npy data must be memory-mapped")
        };
        assert_eq!(offset % 64, 0);
        let expected: Vec<f32> = match dtype {
            DType::U8 => vec![0.0, 1.0, 2.0, 3.0, 100.0, 255.0],
            DType::I32 | DType::I64 => vec![0.0, 1.0, -2.0, 3.0, 100.0, -7.0],
            _ => vals.iter().map(|&v| v as f32).collect(),
        };
        assert_eq!(as_f32(&a), expected, "{descr}");
        let mut out = Vec::new();
        a.gather_f32(&[2, 0], &mut out);
        assert_eq!(out, [expected[4], expected[5], expected[0], expected[1]]);
    }
}

#[test]
fn unaligned_data_offsets_convert_correctly() {
    let dir = test_dir("npy_unaligned");
    let vals: Vec<f64> = (0..10).map(|i| i as f64 * 1.25 - 4.0).collect();
    for pad_to in [1usize, 3, 5, 7] {
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = npy_bytes(1, &header("<f8", "(5, 2)"), pad_to, &data);
        let p = write(&dir, &format!("odd{pad_to}.npy"), &bytes);
        let a = read_npy(&p).unwrap();
        let Bytes::Mapped { offset, .. } = a.bytes else {
            panic!("not mapped")
        };
        assert_eq!(offset, bytes.len() - 80);
        let expected: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
        assert_eq!(as_f32(&a), expected);
        let mut out = Vec::new();
        a.gather_f32(&[4, 1], &mut out);
        assert_eq!(out, [expected[8], expected[9], expected[2], expected[3]]);
    }
    // At least one case must really be unaligned for 8-byte reads.
    let bytes = npy_bytes(
        1,
        &header("<i8", "(2,)"),
        7,
        &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_ne!((bytes.len() - 16) % 8, 0);
    let a = read_npy(write(&dir, "i8.npy", &bytes)).unwrap();
    assert_eq!(as_f32(&a), [1.0, 2.0]);
}

#[test]
fn header_parser_is_tolerant() {
    let dir = test_dir("npy_tolerant");
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    for h in [
        "{'descr':'<f4','fortran_order':False,'shape':(2,)}",
        "{ \"descr\" : \"<f4\" , 'shape' : ( 2 , ) , 'fortran_order' : False , }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }",
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
        "{'descr': 'f4', 'fortran_order': False, 'shape': [2], 'extra': None}",
    ] {
        let p = write(&dir, "t.npy", &npy_bytes(1, h, 16, &data));
        let a = read_npy(&p).unwrap_or_else(|e| panic!("{h}: {e}"));
        assert_eq!(a.shape, [2]);
        assert_eq!(as_f32(&a), [1.0, 2.0]);
    }
}

#[test]
fn version_2_and_3_headers() {
    let dir = test_dir("npy_v2");
    let data: Vec<u8> = (0..6i32).flat_map(|v| v.to_le_bytes()).collect();
    for major in [2, 3] {
        let p = write(
            &dir,
            &format!("v{major}.npy"),
            &npy_bytes(major, &header("<i4", "(3, 2)"), 64, &data),
        );
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, [3, 2]);
        assert_eq!(as_f32(&a), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}

#[test]
fn write_npy_matches_numpy_layout() {
    let dir = test_dir("npy_write");
    let p = dir.join("w.npy");
    let data: Vec<u8> = [1.5f32, -2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_npy(&p, DType::F32, &[3], &data).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    // Same bytes np.save produces for np.array([1.5, -2, 3], dtype='<f4').
    let mut expected = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
    let mut h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }".to_string();
    h.push_str(&" ".repeat(128 - 10 - h.len() - 1));
    h.push('\n');
    expected.extend_from_slice(h.as_bytes());
    expected.extend_from_slice(&data);
    assert_eq!(bytes, expected);
    assert_eq!(as_f32(&read_npy(&p).unwrap()), [1.5, -2.0, 3.0]);

    let e = write_npy(&p, DType::F64, &[2], &data).unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::BufferSize {
                expected: 16,
                actual: 12,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn truncated_and_lying_files() {
    let dir = test_dir("npy_truncated");
    let data = vec![0u8; 204800];
    let p = write(
        &dir,
        "batch_3.npy",
        &npy_bytes(1, &header("<f4", "(100, 28, 28)"), 64, &data),
    );
    let e = read_npy(&p).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: header says shape (100, 28, 28) of f32 = 313600 bytes but only 204800 bytes follow the header",
            p.display()
        )
    );
    let p = write(
        &dir,
        "long.npy",
        &npy_bytes(1, &header("|u1", "(10,)"), 64, &[7u8; 12]),
    );
    let e = read_npy(&p).unwrap_err().to_string();
    assert!(e.ends_with("header says shape (10,) of u8 = 10 bytes but 12 bytes follow the header (2 extra): the header lies about the shape"), "{e}");

    // The header itself cut short.
    let full = npy_bytes(1, &header("<f4", "(2,)"), 64, &[0; 8]);
    let p = write(&dir, "cut.npy", &full[..40]);
    let e = read_npy(&p).unwrap_err().to_string();
    assert!(
        e.ends_with("header ends at byte 128 but the file has only 40 bytes"),
        "{e}"
    );
}

#[test]
fn rejects_bad_files_with_clear_messages() {
    let dir = test_dir("npy_bad");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.npy", vec![], "file is empty (0 bytes)"),
        ("magic.npy", b"PK\x03\x04zipfile".to_vec(), "not a valid NumPy .npy file: expected magic \\x93NUMPY but the file starts with PK\\x03\\x04zipf"),
        ("ver.npy", b"\x93NUMPY\x04\x00\x10\x00".to_vec(), "unsupported NumPy .npy version 4.0"),
        (
            "fortran.npy",
            npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 64, &[0; 24]),
            "fortran_order is True for shape (2, 3)",
        ),
        (
            "big.npy",
            npy_bytes(1, &header(">f4", "(2,)"), 64, &[0; 8]),
            "unsupported dtype '>f4': big-endian data is not supported; save with a.astype('<f4')",
        ),
        ("i1.npy", npy_bytes(1, &header("|i1", "(2,)"), 64, &[0; 2]), "unsupported dtype '|i1'"),
        (
            "record.npy",
            npy_bytes(1, "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }", 64, &[0; 8]),
            "unsupported dtype structured (record) dtype",
        ),
        ("scalar.npy", npy_bytes(1, &header("<f4", "()"), 64, &[0; 4]), "shape () has no sample axis"),
        ("noshape.npy", npy_bytes(1, "{'descr': '<f4', 'fortran_order': False}", 64, &[]), "missing key 'shape'"),
        ("garbage.npy", npy_bytes(1, "{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,)}", 64, &[0; 4]), "unexpected \"Nope"),
        ("unclosed.npy", npy_bytes(1, "{'descr': '<f4', 'shape': (1,", 64, &[0; 4]), "header ended where a value was expected"),
        ("unclosed2.npy", npy_bytes(1, "{'descr': '<f4', 'shape': (1", 64, &[0; 4]), "expected ')' but the header ended"),
    ];
    for (name, bytes, want) in cases {
        let p = write(&dir, name, &bytes);
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        assert!(e.contains(want), "{name}: {e}");
    }
    let e = read_npy(dir.join("missing.npy")).unwrap_err().to_string();
    assert!(e.contains("missing.npy: cannot open:"), "{e}");
}

#[test]
fn zero_samples_is_fine() {
    let dir = test_dir("npy_zero");
    let p = write(
        &dir,
        "z.npy",
        &npy_bytes(1, &header("<f4", "(0, 5)"), 64, &[]),
    );
    let a = read_npy(&p).unwrap();
    assert_eq!(a.num_samples(), 0);
    assert_eq!(a.sample_shape(), &[5]);
    // Zero samples of a size that overflows: refused, naming the file and the shape (it
    // was accepted, and asking for its sample width then overflowed).
    let p = write(
        &dir,
        "huge.npy",
        &npy_bytes(1, &header("<f4", "(0, 8589934592, 8589934592)"), 64, &[]),
    );
    let e = read_npy(&p).unwrap_err();
    assert!(matches!(e, FormatError::SizeOverflow { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "{}: shape (0, 8589934592, 8589934592) of f32 is too large to address",
            p.display()
        )),
        "{e}"
    );
}

/// Cross-checks against NumPy itself. Uses `$DEEPTRAIN_PYTHON` or
/// `python3`; skips (with a message) when NumPy is not importable.
#[test]
fn reads_files_written_by_numpy() {
    let python = std::env::var("DEEPTRAIN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP reads_files_written_by_numpy: `{python} -c 'import numpy'` failed (set DEEPTRAIN_PYTHON to an interpreter with numpy)");
        return;
    }
    let dir = test_dir("npy_numpy");
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
np.save(d + '/f32.npy', np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.5 - 3)
np.save(d + '/f64.npy', np.arange(7, dtype=np.float64) / 3)
np.save(d + '/f16.npy', (np.arange(10, dtype=np.float16) * 0.25).reshape(5, 2))
np.save(d + '/u8.npy', (np.arange(300) % 256).astype(np.uint8).reshape(100, 3))
np.save(d + '/i32.npy', np.arange(-5, 5, dtype=np.int32))
np.save(d + '/i64.npy', (np.arange(12, dtype=np.int64) * 10**10).reshape(3, 2, 2))
np.save(d + '/strided.npy', np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2])
np.save(d + '/empty.npy', np.zeros((0, 5), dtype=np.float32))
np.save(d + '/fortran.npy', np.asfortranarray(np.zeros((3, 4), dtype=np.float32)))
np.save(d + '/big.npy', np.arange(4, dtype='>f4'))
np.save(d + '/scalar.npy', np.float32(1.5))
with open(d + '/v2.npy', 'wb') as f:
    np.lib.format.write_array(f, np.arange(6, dtype=np.float32).reshape(3, 2), version=(2, 0))
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let a = read_npy(dir.join("f32.npy")).unwrap();
    assert_eq!((a.dtype, a.shape.as_slice()), (DType::F32, &[2, 3, 4][..]));
    assert_eq!(
        as_f32(&a),
        (0..24).map(|i| i as f32 * 0.5 - 3.0).collect::<Vec<_>>()
    );

    let a = read_npy(dir.join("f64.npy")).unwrap();
    let got: Vec<f64> = a
        .raw()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..7).map(|i| i as f64 / 3.0).collect::<Vec<_>>());

    let a = read_npy(dir.join("f16.npy")).unwrap();
    assert_eq!((a.dtype, a.shape.as_slice()), (DType::F16, &[5, 2][..]));
    assert_eq!(
        as_f32(&a),
        (0..10).map(|i| i as f32 * 0.25).collect::<Vec<_>>()
    );

    let a = read_npy(dir.join("u8.npy")).unwrap();
    assert_eq!((a.dtype, a.shape.as_slice()), (DType::U8, &[100, 3][..]));
    assert_eq!(
        a.raw(),
        (0..300).map(|i| (i % 256) as u8).collect::<Vec<_>>()
    );

    let a = read_npy(dir.join("i32.npy")).unwrap();
    assert_eq!(as_f32(&a), (-5..5).map(|i| i as f32).collect::<Vec<_>>());

    let a = read_npy(dir.join("i64.npy")).unwrap();
    assert_eq!(a.shape, [3, 2, 2]);
    let got: Vec<i64> = a
        .raw()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..12).map(|i| i * 10_000_000_000).collect::<Vec<_>>());

    let a = read_npy(dir.join("strided.npy")).unwrap();
    assert_eq!(a.shape, [4, 3]);
    assert_eq!(
        as_f32(&a),
        [0., 2., 4., 5., 7., 9., 10., 12., 14., 15., 17., 19.]
    );

    assert_eq!(read_npy(dir.join("empty.npy")).unwrap().shape, [0, 5]);
    let a = read_npy(dir.join("v2.npy")).unwrap();
    assert_eq!(as_f32(&a), [0., 1., 2., 3., 4., 5.]);

    let e = read_npy(dir.join("fortran.npy")).unwrap_err();
    assert!(matches!(e, FormatError::FortranOrder { .. }), "{e}");
    let e = read_npy(dir.join("big.npy")).unwrap_err().to_string();
    assert!(e.contains("big-endian"), "{e}");
    let e = read_npy(dir.join("scalar.npy")).unwrap_err();
    assert!(matches!(e, FormatError::NoSampleAxis { .. }), "{e}");

    // And NumPy can read what write_npy writes.
    let p = dir.join("ours.npy");
    let data: Vec<u8> = (0..6i64).flat_map(|v| (v * 3 - 1).to_le_bytes()).collect();
    write_npy(&p, DType::I64, &[2, 3], &data).unwrap();
    let check = "import sys, numpy as np; a = np.load(sys.argv[1]); \
                 assert a.dtype == np.int64 and a.shape == (2, 3), (a.dtype, a.shape); \
                 assert (a.ravel() == np.arange(6) * 3 - 1).all(), a";
    let out = std::process::Command::new(&python)
        .args(["-c", check, p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
