//! IDX reader (the MNIST / Fashion-MNIST / EMNIST distribution format).
//!
//! Layout: bytes `0x00 0x00 <type code> <ndims>`, then `ndims` big-endian u32
//! dimensions, then the data in C order, big-endian. Type codes: 0x08 u8,
//! 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64. We support u8, i32, f32
//! and f64; i8/i16 have no matching [`DType`] and are rejected.
//!
//! u8 data (all of MNIST) is served zero-copy from a memory map. Multi-byte
//! types are big-endian on disk, so they are byte-swapped once into an owned
//! little-endian buffer, keeping [`ArrayData`]'s "always little-endian" rule.
//!
//! `.gz` files (how MNIST ships) are decompressed once into a cache directory
//! and mapped from there, so epochs and later runs never re-inflate them.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use super::array::{byte_len, fmt_shape, ArrayData, Bytes, DType, FormatError, MappedFile};

/// Reads an idx file, or a gzip-compressed one (name ending in `.gz`) via a
/// decompressed copy in `cache_dir` (see [`decompress_cached`]). Errors name
/// the path the caller passed, not the cache file.
pub fn read_idx(path: impl AsRef<Path>, cache_dir: &Path) -> Result<ArrayData, FormatError> {
    let path = path.as_ref();
    let is_gz = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".gz"));
    let data_file = if is_gz {
        decompress_cached(path, cache_dir)?
    } else {
        path.to_path_buf()
    };
    let map = MappedFile::open(&data_file, &data_file)?;
    parse(path, map)
}

/// Returns `cache_dir/<name without .gz>`, decompressing `gz` there first
/// unless a cache file already exists whose size equals the gzip trailer's
/// ISIZE field (uncompressed size mod 2^32) and which is not older than the
/// `.gz`. Decompression writes a uniquely named temp file, fsyncs it, then
/// renames it into place, so a crash or a concurrent reader never sees (and
/// never trusts) a half-written cache file. Inflating stops at the size the idx
/// header (the stream's first bytes) declares: a stream that is longer (a gzip
/// bomb) or shorter, or whose header is invalid, is an error and the temp file
/// is removed, so no cache file is left.
pub fn decompress_cached(gz: &Path, cache_dir: &Path) -> Result<PathBuf, FormatError> {
    let name = gz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".gz"))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| FormatError::Invalid {
            path: gz.into(),
            reason: "expected a file name ending in .gz".into(),
        })?;
    let target = cache_dir.join(name);
    let gz_meta = fs::metadata(gz).map_err(|e| FormatError::io(gz, "stat", e))?;
    let isize = gzip_isize(gz)?;
    if let Ok(meta) = fs::metadata(&target) {
        let size_ok = meta.len() as u32 == isize;
        let fresh = match (meta.modified(), gz_meta.modified()) {
            (Ok(cache), Ok(src)) => cache >= src,
            _ => true,
        };
        if size_ok && fresh {
            return Ok(target);
        }
    }
    fs::create_dir_all(cache_dir).map_err(|e| FormatError::io(cache_dir, "create directory", e))?;
    // A temporary file beside the target, removed if anything fails, renamed into place
    // once complete and synced: a crash never leaves a partial cache file under `name`.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(cache_dir)
        .map_err(|e| FormatError::io(cache_dir, "create a temporary file in", e))?;
    let input = File::open(gz).map_err(|e| FormatError::io(gz, "open", e))?;
    let mut decoder = MultiGzDecoder::new(io::BufReader::new(input));
    // The idx header, read from the stream itself, says how many bytes the file has:
    // inflating stops one byte past that, so a gzip bomb costs at most its declared
    // size on disk (and the temp file is deleted when `tmp` drops on the error).
    let head = read_idx_header(gz, &mut decoder)?;
    let declared = head.end();
    let mut writer = BufWriter::with_capacity(1 << 20, tmp.as_file());
    io::Write::write_all(&mut writer, &head.bytes)
        .map_err(|e| FormatError::io(tmp.path(), "write", e))?;
    let rest = (declared - head.bytes.len()) as u64;
    let copied = io::copy(&mut (&mut decoder).take(rest + 1), &mut writer)
        .map_err(|e| FormatError::io(gz, "decompress gzip", e))?;
    if copied > rest {
        return Err(FormatError::Invalid {
            path: gz.into(),
            reason: format!(
                "decompresses to more than the {declared} bytes its idx header declares \
                 (shape {} of {} plus a {}-byte header); stopped after {} bytes, no cache file kept",
                fmt_shape(&head.shape),
                head.dtype,
                head.data_start,
                declared as u64 + 1,
            ),
        });
    }
    if copied < rest {
        return Err(FormatError::Truncated {
            path: gz.into(),
            shape: fmt_shape(&head.shape),
            dtype: head.dtype,
            expected: head.data_len as u64,
            actual: (head.bytes.len() - head.data_start) as u64 + copied,
        });
    }
    writer
        .into_inner()
        .map_err(|e| FormatError::io(tmp.path(), "write", e.into_error()))?
        .sync_all()
        .map_err(|e| FormatError::io(tmp.path(), "sync", e))?;
    tmp.persist(&target)
        .map_err(|e| FormatError::io(&target, "rename into", e.error))?;
    Ok(target)
}

/// The ISIZE field of the last gzip member: uncompressed size mod 2^32.
fn gzip_isize(gz: &Path) -> Result<u32, FormatError> {
    let mut f = File::open(gz).map_err(|e| FormatError::io(gz, "open", e))?;
    let mut magic = [0u8; 2];
    let len = f
        .metadata()
        .map_err(|e| FormatError::io(gz, "stat", e))?
        .len();
    if len == 0 {
        return Err(FormatError::Empty {
            path: gz.into(),
            format: "gzip",
        });
    }
    // 18 = smallest possible gzip member (10-byte header + 8-byte trailer).
    let read_magic = f.read_exact(&mut magic);
    if len < 18 || read_magic.is_err() || magic != [0x1f, 0x8b] {
        return Err(FormatError::BadMagic {
            path: gz.into(),
            format: "gzip",
            expected: "1f 8b".into(),
            found: format!("{:02x} {:02x} ({len} bytes in total)", magic[0], magic[1]),
        });
    }
    let mut trailer = [0u8; 4];
    f.seek(SeekFrom::End(-4))
        .and_then(|_| f.read_exact(&mut trailer))
        .map_err(|e| FormatError::io(gz, "read gzip trailer of", e))?;
    Ok(u32::from_le_bytes(trailer))
}

/// An idx header: element type, shape, where the data starts and how long it is.
struct IdxHeader {
    dtype: DType,
    shape: Vec<usize>,
    data_start: usize,
    data_len: usize,
    /// The header's own bytes (only filled by [`read_idx_header`]).
    bytes: Vec<u8>,
}

impl IdxHeader {
    /// Total file size the header declares: header plus data bytes.
    fn end(&self) -> usize {
        self.data_start + self.data_len
    }
}

/// Reads the idx header from the start of a (decompressing) stream, so the caller
/// knows the declared file size before writing more than the header. `path` is only
/// used in messages.
fn read_idx_header(path: &Path, input: &mut impl Read) -> Result<IdxHeader, FormatError> {
    let mut bytes = Vec::with_capacity(4 + 4 * 255);
    let mut fill = |bytes: &mut Vec<u8>, upto: usize| {
        let want = (upto - bytes.len()) as u64;
        input
            .by_ref()
            .take(want)
            .read_to_end(bytes)
            .map_err(|e| FormatError::io(path, "decompress gzip", e))
    };
    fill(&mut bytes, 4)?;
    if bytes.len() == 4 && bytes[0] == 0 && bytes[1] == 0 {
        let data_start = 4 + 4 * bytes[3] as usize;
        fill(&mut bytes, data_start)?;
    }
    let mut head = parse_header(path, &bytes, bytes.len())?;
    head.bytes = bytes;
    Ok(head)
}

/// Parses the idx header at the start of `bytes` (a whole file of `file_len` bytes, or
/// its first bytes); `path` is only used in messages.
fn parse_header(path: &Path, map: &[u8], file_len: usize) -> Result<IdxHeader, FormatError> {
    if file_len == 0 {
        return Err(FormatError::Empty {
            path: path.into(),
            format: "idx",
        });
    }
    if map.len() < 4 || map[0] != 0 || map[1] != 0 {
        let shown: Vec<String> = map[..map.len().min(4)]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return Err(FormatError::BadMagic {
            path: path.into(),
            format: "idx",
            expected: "00 00 <type> <ndims>".into(),
            found: shown.join(" "),
        });
    }
    let (code, ndims) = (map[2], map[3] as usize);
    let dtype = match code {
        0x08 => DType::U8,
        0x0C => DType::I32,
        0x0D => DType::F32,
        0x0E => DType::F64,
        _ => {
            let name = match code {
                0x09 => "i8",
                0x0B => "i16",
                _ => "unknown",
            };
            return Err(FormatError::UnsupportedDType {
                path: path.into(),
                dtype: format!("idx type code 0x{code:02x} ({name})"),
                reason: "supported: 0x08 u8, 0x0C i32, 0x0D f32, 0x0E f64".into(),
            });
        }
    };
    let data_start = 4 + 4 * ndims;
    if map.len() < data_start {
        return Err(FormatError::TruncatedHeader {
            path: path.into(),
            header_end: data_start as u64,
            file_len: file_len as u64,
        });
    }
    let shape: Vec<usize> = map[4..data_start]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let shape_text = fmt_shape(&shape);
    if shape.is_empty() {
        return Err(FormatError::NoSampleAxis {
            path: path.into(),
            shape: shape_text,
        });
    }
    let Some(data_len) = byte_len(&shape, dtype).filter(|n| n.checked_add(data_start).is_some())
    else {
        return Err(FormatError::SizeOverflow {
            path: path.into(),
            shape: shape_text,
            dtype,
        });
    };
    Ok(IdxHeader {
        dtype,
        shape,
        data_start,
        data_len,
        bytes: Vec::new(),
    })
}

/// Parses the idx file mapped in `map`; `path` is only used in messages.
fn parse(path: &Path, map: MappedFile) -> Result<ArrayData, FormatError> {
    let IdxHeader {
        dtype,
        shape,
        data_start,
        data_len: expected,
        ..
    } = parse_header(path, &map, map.len())?;
    let shape_text = fmt_shape(&shape);
    let actual = map.len() - data_start;
    if actual != expected {
        let (expected, actual) = (expected as u64, actual as u64);
        let path = path.into();
        return Err(if actual < expected {
            FormatError::Truncated {
                path,
                shape: shape_text,
                dtype,
                expected,
                actual,
            }
        } else {
            FormatError::TrailingBytes {
                path,
                shape: shape_text,
                dtype,
                expected,
                actual,
            }
        });
    }
    let bytes = if dtype.size() == 1 {
        Bytes::Mapped {
            map: Arc::new(map),
            offset: data_start,
            len: expected,
        }
    } else {
        // Big-endian -> little-endian: reverse the bytes of every element.
        let swapped: Vec<u8> = map[data_start..]
            .chunks_exact(dtype.size())
            .flat_map(|c| c.iter().rev().copied())
            .collect();
        Bytes::Owned(Arc::new(swapped))
    };
    ArrayData::new(path, dtype, shape, bytes)
}

#[cfg(test)]
mod tests {
    use super::super::array::test_util::test_dir;
    use super::*;
    use std::io::Write;

    fn idx_bytes(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, code, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gzip(path: &Path, data: &[u8]) {
        let mut enc =
            flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap();
    }

    fn floats(a: &ArrayData) -> Vec<f32> {
        let mut out = Vec::new();
        a.range_f32(0, a.num_samples(), &mut out);
        out
    }

    #[test]
    fn hand_written_u8_f32_i32_files() {
        let dir = test_dir("idx_small");
        let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
        let p = dir.join("imgs-idx3-ubyte");
        fs::write(&p, idx_bytes(0x08, &[3, 2, 2], &pixels)).unwrap();
        let a = read_idx(&p, &dir.join("cache")).unwrap();
        assert_eq!((a.dtype, a.shape.as_slice()), (DType::U8, &[3, 2, 2][..]));
        assert!(matches!(a.bytes, Bytes::Mapped { offset: 16, .. }));
        assert_eq!(a.samples_raw(1, 2), &pixels[4..8]);
        assert!(!dir.join("cache").exists(), "plain files need no cache");

        let vals = [1.5f32, -2.0, 1e-3, 7.0];
        let be: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
        let p = dir.join("f32-idx2");
        fs::write(&p, idx_bytes(0x0D, &[2, 2], &be)).unwrap();
        let a = read_idx(&p, &dir).unwrap();
        assert_eq!(a.dtype, DType::F32);
        assert_eq!(floats(&a), vals);

        let ints = [-3i32, 70000];
        let be: Vec<u8> = ints.iter().flat_map(|v| v.to_be_bytes()).collect();
        let p = dir.join("i32-idx1");
        fs::write(&p, idx_bytes(0x0C, &[2], &be)).unwrap();
        let a = read_idx(&p, &dir).unwrap();
        assert_eq!(
            a.raw(),
            [-3i32, 70000]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn gz_is_decompressed_once_into_the_cache() {
        let dir = test_dir("idx_gz");
        let cache = dir.join("cache");
        let labels = [3u8, 1, 4, 1, 5, 9, 2, 6];
        let gz = dir.join("labels-idx1-ubyte.gz");
        gzip(&gz, &idx_bytes(0x08, &[8], &labels));

        let a = read_idx(&gz, &cache).unwrap();
        assert_eq!(a.to_u32_labels().unwrap(), [3, 1, 4, 1, 5, 9, 2, 6]);
        assert_eq!(a.path, gz);
        let cached = cache.join("labels-idx1-ubyte");
        let first_mtime = fs::metadata(&cached).unwrap().modified().unwrap();
        let entries: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["labels-idx1-ubyte"], "no temp files left behind");

        // Second read reuses the cache file untouched.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = read_idx(&gz, &cache).unwrap();
        assert_eq!(b.raw(), labels);
        assert_eq!(
            fs::metadata(&cached).unwrap().modified().unwrap(),
            first_mtime
        );

        // A cache file of the wrong size (e.g. left by some other tool) is replaced.
        fs::write(&cached, b"\x00\x00\x08\x01\x00\x00\x00\x02xy").unwrap();
        let c = read_idx(&gz, &cache).unwrap();
        assert_eq!(c.raw(), labels);
    }

    #[test]
    fn truncated_and_invalid_files() {
        let dir = test_dir("idx_bad");
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            fs::write(&p, bytes).unwrap();
            p
        };
        let p = write("trunc", &idx_bytes(0x08, &[100, 28, 28], &[0; 50000]));
        let e = read_idx(&p, &dir).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: header says shape (100, 28, 28) of u8 = 78400 bytes but only 50000 bytes follow the header",
                p.display()
            )
        );
        let p = write("long", &idx_bytes(0x0D, &[2], &[0; 12]));
        let e = read_idx(&p, &dir).unwrap_err().to_string();
        assert!(e.ends_with("header says shape (2,) of f32 = 8 bytes but 12 bytes follow the header (4 extra): the header lies about the shape"), "{e}");
        let p = write("hdr", &[0, 0, 8, 3, 0, 0, 0, 5]);
        let e = read_idx(&p, &dir).unwrap_err().to_string();
        assert!(
            e.ends_with("header ends at byte 16 but the file has only 8 bytes"),
            "{e}"
        );
        let p = write("i16", &idx_bytes(0x0B, &[1], &[0, 1]));
        let e = read_idx(&p, &dir).unwrap_err().to_string();
        assert!(
            e.contains("unsupported dtype idx type code 0x0b (i16)"),
            "{e}"
        );
        let p = write("magic", b"\x89PNG\r\n");
        let e = read_idx(&p, &dir).unwrap_err().to_string();
        assert!(e.ends_with("not a valid idx file: expected magic 00 00 <type> <ndims> but the file starts with 89 50 4e 47"), "{e}");
        let p = write("scalar", &[0, 0, 8, 0, 7]);
        let e = read_idx(&p, &dir).unwrap_err().to_string();
        assert!(e.contains("shape () has no sample axis"), "{e}");
        let p = write("empty", b"");
        assert!(matches!(read_idx(&p, &dir), Err(FormatError::Empty { .. })));

        // A truncated .gz fails to decompress and leaves no cache behind.
        let gz = dir.join("cut-idx1-ubyte.gz");
        gzip(&gz, &idx_bytes(0x08, &[1000], &[7; 1000]));
        let bytes = fs::read(&gz).unwrap();
        fs::write(&gz, &bytes[..bytes.len() - 10]).unwrap();
        let cache = dir.join("cache");
        let e = read_idx(&gz, &cache).unwrap_err().to_string();
        assert!(
            e.contains("cut-idx1-ubyte.gz: cannot decompress gzip"),
            "{e}"
        );
        assert_eq!(
            fs::read_dir(&cache).unwrap().count(),
            0,
            "no half cache files"
        );
        let p = write("fake.gz", b"not gzip at all, honestly");
        let e = read_idx(&p, &cache).unwrap_err().to_string();
        assert!(e.contains("not a valid gzip file"), "{e}");
    }

    #[test]
    fn gzip_bomb_stops_at_the_declared_size_and_leaves_no_cache_file() {
        let dir = test_dir("idx_bomb");
        let cache = dir.join("cache");
        // A valid header for 10 samples of 10 bytes, then 64 MiB of zeros: the
        // compressed file is tiny, the inflated one is not.
        let gz = dir.join("bomb-idx3-ubyte.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::best());
        enc.write_all(&idx_bytes(0x08, &[10, 10], &[1; 100]))
            .unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        enc.finish().unwrap();
        assert!(fs::metadata(&gz).unwrap().len() < 1 << 20);
        let e = read_idx(&gz, &cache).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: decompresses to more than the 112 bytes its idx header declares \
                 (shape (10, 10) of u8 plus a 12-byte header); stopped after 113 bytes, \
                 no cache file kept",
                gz.display()
            )
        );
        let left: Vec<_> = fs::read_dir(&cache).unwrap().collect();
        assert!(left.is_empty(), "cache files left: {left:?}");

        // A bad header inside the gzip is reported before anything is cached.
        let gz = dir.join("png.gz");
        gzip(&gz, b"\x89PNG\r\n and much more");
        let e = read_idx(&gz, &cache).unwrap_err().to_string();
        assert!(e.ends_with("not a valid idx file: expected magic 00 00 <type> <ndims> but the file starts with 89 50 4e 47"), "{e}");
        let gz = dir.join("hdr.gz");
        gzip(&gz, &[0, 0, 8, 3, 0, 0, 0, 5]);
        let e = read_idx(&gz, &cache).unwrap_err().to_string();
        assert!(
            e.ends_with("header ends at byte 16 but the file has only 8 bytes"),
            "{e}"
        );
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 0);
        // A short one too.
        let gz = dir.join("short.gz");
        gzip(&gz, &idx_bytes(0x08, &[10], &[1; 4]));
        let e = read_idx(&gz, &cache).unwrap_err().to_string();
        assert!(e.contains("but only 4 bytes follow the header"), "{e}");
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 0);
    }

    /// `$DEEPTRAIN_SHARED/data/mnist` if set, else `<manifest>/../shared/data/mnist`.
    fn mnist_dir() -> Option<PathBuf> {
        let dir = match std::env::var_os("DEEPTRAIN_SHARED") {
            Some(shared) => PathBuf::from(shared).join("data/mnist"),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"),
        };
        dir.is_dir().then_some(dir)
    }

    #[test]
    fn real_mnist() {
        let Some(dir) = mnist_dir() else {
            eprintln!("SKIP real_mnist: no MNIST dir (set DEEPTRAIN_SHARED to the dir holding data/mnist)");
            return;
        };
        // A fixed cache dir (not per-process) so repeated runs reuse the
        // ~55 MB of decompressed files instead of piling up copies.
        let cache = std::env::temp_dir().join("deeptrain-formats-mnist-cache");
        let expected_counts = [
            (
                "t10k",
                10000,
                [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
                7,
            ),
            (
                "train",
                60000,
                [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
                5,
            ),
        ];
        for (split, n, counts, first_label) in expected_counts {
            let images =
                read_idx(dir.join(format!("{split}-images-idx3-ubyte.gz")), &cache).unwrap();
            let labels =
                read_idx(dir.join(format!("{split}-labels-idx1-ubyte.gz")), &cache).unwrap();
            assert_eq!(
                (images.dtype, images.shape.as_slice()),
                (DType::U8, &[n, 28, 28][..])
            );
            assert_eq!(labels.shape, [n]);
            assert!(matches!(images.bytes, Bytes::Mapped { offset: 16, .. }));
            assert!(matches!(labels.bytes, Bytes::Mapped { offset: 8, .. }));
            let ids = labels.to_u32_labels().unwrap();
            let mut got = [0usize; 10];
            for &c in &ids {
                got[c as usize] += 1;
            }
            assert_eq!(got, counts, "{split} label counts");
            assert_eq!(ids[0], first_label);
            // The well-known normalisation constants (mean 0.1307, std 0.3081
            // on train) pin down the pixel data, not just the header.
            let (mut sum, mut sq) = (0f64, 0f64);
            for &p in images.raw() {
                let v = f64::from(p) / 255.0;
                sum += v;
                sq += v * v;
            }
            let len = images.raw().len() as f64;
            let mean = sum / len;
            let std = (sq / len - mean * mean).sqrt();
            if split == "train" {
                assert!((mean - 0.1307).abs() < 1e-4, "mean {mean}");
                assert!((std - 0.3081).abs() < 1e-4, "std {std}");
            }
            let mut first = Vec::new();
            images.gather_f32(&[0], &mut first);
            assert_eq!(first.len(), 784);
            assert_eq!(first.iter().cloned().fold(0.0, f32::max), 255.0);
        }
    }
}
