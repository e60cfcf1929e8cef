//! PNG encoding and the atomic file write shared by the report and the histogram
//! figures: a reader (or a crash) never sees a half-written PNG under the final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::ReportError;

/// Encodes RGB8 `pixels` of `(width, height)` as PNG and writes them to `path`
/// atomically: into a temp file next to `path` (missing directories are created),
/// synced to disk, then renamed over `path`. On any error the temp file is removed
/// and `path` is left as it was.
pub(super) fn write_png(
    path: &Path,
    (width, height): (u32, u32),
    pixels: &[u8],
) -> Result<(), ReportError> {
    let io_err = |p: &Path| {
        let path = p.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    // A recognisable name, in case a killed process leaves one behind.
    let prefix = match path.file_name() {
        Some(n) => format!(".{}.", n.to_string_lossy()),
        None => ".report.".to_string(),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // tempfile creates owner-only files; a report gets the usual permissions
    // (0666 less the umask), like any file the run writes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(io_err(dir))?;
    encode(tmp.as_file_mut(), (width, height), pixels).map_err(|e| ReportError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // Without the sync, a power loss after the rename can leave an empty file at `path`.
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| ReportError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// PNG-encodes `pixels` into `file` with the settings plotters' bitmap backend used
/// through `image` 0.24 (fast compression, adaptive filtering), so reports stay
/// byte-identical to the ones written before this file existed.
fn encode(
    file: &mut File,
    (width, height): (u32, u32),
    pixels: &[u8],
) -> Result<(), ::png::EncodingError> {
    let mut out = BufWriter::new(file);
    let mut encoder = ::png::Encoder::new(&mut out, width, height);
    encoder.set_color(::png::ColorType::Rgb);
    encoder.set_depth(::png::BitDepth::Eight);
    encoder.set_compression(::png::Compression::Fast);
    encoder.set_filter(::png::FilterType::Sub);
    encoder.set_adaptive_filter(::png::AdaptiveFilterType::Adaptive);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("h_report_png_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmp dir");
        d
    }

    #[test]
    fn failed_write_keeps_the_old_file_and_leaves_no_temp_file() {
        let dir = tmp_dir("fail");
        let path = dir.join("report.png");
        std::fs::write(&path, b"previous").expect("write");
        // 2x2 RGB needs 12 bytes: the encoder refuses 5.
        let err = write_png(&path, (2, 2), &[0; 5]).expect_err("must fail");
        assert!(matches!(err, ReportError::Encode { .. }), "{err}");
        assert!(err.to_string().contains("report.png"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), b"previous");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["report.png"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn written_png_decodes_and_has_ordinary_permissions() {
        let dir = tmp_dir("ok");
        let path = dir.join("sub").join("img.png");
        let pixels: Vec<u8> = (0..2 * 3 * 3).map(|i| i as u8 * 10).collect();
        write_png(&path, (2, 3), &pixels).expect("write");
        let decoder = ::png::Decoder::new(File::open(&path).expect("open"));
        let mut reader = decoder.read_info().expect("header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("frame");
        assert_eq!((info.width, info.height), (2, 3));
        assert_eq!(&buf[..info.buffer_size()], &pixels[..]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let plain = dir.join("plain");
            File::create(&plain).expect("create");
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode();
            assert_eq!(mode(&path), mode(&plain));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
