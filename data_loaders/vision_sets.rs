//! The standard vision sets by name (`mnist`, `cifar10` sources): local files read through
//! candle-datasets' loaders (`candle_datasets::vision::{mnist, cifar}::load_dir`), never
//! downloaded. The file checks and the argument types are here without the `datasets`
//! feature too, so a build without it can say which feature the set needs, and a build
//! with it can say which file is missing before candle-datasets fails on it.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::InMemoryData;
use crate::error::{Error, Result};

/// MNIST from local idx files, read by candle-datasets (needs the `datasets` feature).
///
/// The four idx files in `dir` (`train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each
/// plain or `.gz`), read by candle-datasets: train on the 60000, validate on the 10000
/// test images; pixels scaled to [0, 1], samples shaped (1, 28, 28). Needs the `datasets`
/// feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MnistArgs {
    /// The directory holding the idx files (required; nothing is downloaded).
    pub dir: String,
}

/// CIFAR-10 from local binary batches, read by candle-datasets (needs the `datasets`
/// feature).
///
/// The batches in `dir` (`data_batch_1.bin` ... `data_batch_5.bin`,
/// `test_batch.bin`: the `cifar-10-batches-bin` folder of `cifar-10-binary.tar.gz`),
/// read by candle-datasets: train on the 50000, validate on the 10000 test images; pixels
/// scaled to [0, 1], samples shaped (3, 32, 32). Needs the `datasets` feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Cifar10Args {
    /// The directory holding the batches, or the one holding `cifar-10-batches-bin`
    /// (required; nothing is downloaded).
    pub dir: String,
}

/// The files candle-datasets' MNIST loader opens, in its order.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The files candle-datasets' CIFAR-10 loader opens.
pub const CIFAR10_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// Bytes candle-datasets reads from every CIFAR-10 batch file: exactly 10000 records of
/// a label byte and 3 x 32 x 32 pixels.
pub const CIFAR10_FILE_BYTES: u64 = 10_000 * (1 + 3 * 32 * 32);

/// A required argument left empty: one line naming the source and the argument.
fn need_dir(source: &str, dir: &str) -> Result<()> {
    if dir.is_empty() {
        return Err(Error::config(
            "source",
            format!("`{source}`: argument `dir` is required (the directory of its files)"),
        ));
    }
    Ok(())
}

impl MnistArgs {
    /// `dir` must be given.
    pub fn validate(&self) -> Result<()> {
        need_dir("mnist", &self.dir)
    }
}

impl Cifar10Args {
    /// `dir` must be given.
    pub fn validate(&self) -> Result<()> {
        need_dir("cifar10", &self.dir)
    }
}

/// Without the `datasets` feature: the one line saying how to get it.
#[cfg(not(feature = "datasets"))]
fn feature_needed(source: &str) -> Error {
    Error::config(
        "source",
        format!(
            "`{source}` reads its files through candle-datasets, which this build leaves \
             out: build deeptrain with the `datasets` feature (cargo build --release \
             --features datasets)"
        ),
    )
}

/// Where each MNIST file is: `dir/NAME` or `dir/NAME.gz`. A file that is neither is an
/// error naming the directory and the file.
pub fn mnist_files(dir: &Path) -> Result<Vec<PathBuf>> {
    MNIST_FILES
        .iter()
        .map(|name| {
            let plain = dir.join(name);
            let gz = dir.join(format!("{name}.gz"));
            if plain.is_file() {
                Ok(plain)
            } else if gz.is_file() {
                Ok(gz)
            } else {
                Err(Error::Data(format!(
                    "mnist: {} has no {name} (nor {name}.gz); the source reads the four MNIST \
                     idx files ({}) from local disk, nothing is downloaded",
                    dir.display(),
                    MNIST_FILES.join(", ")
                )))
            }
        })
        .collect()
}

/// The CIFAR-10 batch directory (`dir` or `dir/cifar-10-batches-bin`) after checking that
/// every batch file is there with the size candle-datasets reads.
pub fn cifar10_dir(dir: &Path) -> Result<PathBuf> {
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if !dir.join(CIFAR10_FILES[0]).is_file() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    for name in CIFAR10_FILES {
        let path = dir.join(name);
        let len = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            _ => {
                return Err(Error::Data(format!(
                    "cifar10: {} has no {name}; the source reads the binary batches ({}) \
                     from local disk, nothing is downloaded",
                    dir.display(),
                    CIFAR10_FILES.join(", ")
                )))
            }
        };
        if len < CIFAR10_FILE_BYTES {
            return Err(Error::Data(format!(
                "cifar10: {} has {len} bytes; candle-datasets reads exactly 10000 images \
                 ({CIFAR10_FILE_BYTES} bytes) from every batch file",
                path.display()
            )));
        }
    }
    Ok(dir)
}

/// MNIST's train and test parts (see [`MnistArgs`]), inputs multiplied by `scale`.
pub fn read_mnist(args: &MnistArgs, scale: f32) -> Result<(InMemoryData, InMemoryData)> {
    args.validate()?;
    #[cfg(not(feature = "datasets"))]
    {
        let _ = scale;
        Err(feature_needed("mnist"))
    }
    #[cfg(feature = "datasets")]
    {
        let dir = Path::new(&args.dir);
        let files = mnist_files(dir)?;
        // candle-datasets opens the plain files; `.gz` ones are decompressed into a
        // directory that lives only while they are read (everything ends up in memory).
        let scratch;
        let read_from = if files
            .iter()
            .all(|f| f.extension().is_none_or(|e| e != "gz"))
        {
            dir.to_path_buf()
        } else {
            scratch = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
            for (name, from) in MNIST_FILES.iter().zip(&files) {
                let to = scratch.path().join(name);
                let mut out = std::fs::File::create(&to).map_err(|e| Error::io(&to, e))?;
                let input = std::fs::File::open(from).map_err(|e| Error::io(from, e))?;
                let copied = if from.extension().is_some_and(|e| e == "gz") {
                    std::io::copy(&mut flate2::read::GzDecoder::new(input), &mut out)
                } else {
                    std::io::copy(&mut std::io::BufReader::new(input), &mut out)
                };
                copied.map_err(|e| Error::io(from, e))?;
            }
            scratch.path().to_path_buf()
        };
        let ds = candle_datasets::vision::mnist::load_dir(&read_from)
            .map_err(|e| Error::Data(format!("mnist: {}: candle-datasets: {e}", dir.display())))?;
        let (rows, cols) = idx_image_size(&read_from.join(MNIST_FILES[0]))?;
        let (train, test) = super::vision_dataset::from_vision_dataset("mnist", &ds)?;
        Ok((
            shaped(train, vec![1, rows, cols], scale),
            shaped(test, vec![1, rows, cols], scale),
        ))
    }
}

/// CIFAR-10's train and test parts (see [`Cifar10Args`]), inputs multiplied by `scale`.
pub fn read_cifar10(args: &Cifar10Args, scale: f32) -> Result<(InMemoryData, InMemoryData)> {
    args.validate()?;
    #[cfg(not(feature = "datasets"))]
    {
        let _ = scale;
        Err(feature_needed("cifar10"))
    }
    #[cfg(feature = "datasets")]
    {
        let dir = cifar10_dir(Path::new(&args.dir))?;
        let ds = candle_datasets::vision::cifar::load_dir(&dir).map_err(|e| {
            Error::Data(format!("cifar10: {}: candle-datasets: {e}", dir.display()))
        })?;
        let (train, test) = super::vision_dataset::from_vision_dataset("cifar10", &ds)?;
        Ok((
            shaped(train, vec![3, 32, 32], scale),
            shaped(test, vec![3, 32, 32], scale),
        ))
    }
}

/// Rows and columns of an idx images file's header (after its magic number and count).
#[cfg(feature = "datasets")]
fn idx_image_size(path: &Path) -> Result<(usize, usize)> {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| Error::io(path, e))?;
    let word =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    Ok((word(8) as usize, word(12) as usize))
}

/// `data` with samples of `shape` (same number of values) and inputs times `scale`.
#[cfg(feature = "datasets")]
fn shaped(mut data: InMemoryData, shape: Vec<usize>, scale: f32) -> InMemoryData {
    if shape.iter().product::<usize>() == data.sample_shape.iter().product::<usize>() {
        data.sample_shape = shape;
    }
    if scale != 1.0 {
        data.features.iter_mut().for_each(|v| *v *= scale);
    }
    data
}
