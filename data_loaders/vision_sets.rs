//! The standard vision sets by name (`mnist`, `fashion_mnist`, `cifar10` sources): local
//! files only, never downloaded. One definition per set (arguments, file checks, sample
//! shape, pixel values) and two readers: the project's own (the idx reader, a CIFAR-10
//! binary reader here) in every build, and candle-datasets' loaders
//! (`candle_datasets::vision::{mnist, cifar}::load_dir`) when built with the `datasets`
//! feature. Both give bitwise the same data; the feature only switches which one runs.
//!
//! The own CIFAR-10 reader is written here rather than taken from a crate: the format is
//! a label byte and 3072 pixel bytes per record, and the crates that read it
//! (candle-datasets) bring ~260 more crates into the build (README, Cargo features).

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::array::DType;
use super::idx::read_idx;
use super::InMemoryData;
use crate::error::{Error, Result};

/// MNIST (or Fashion-MNIST) from local idx files: pixels byte / 255, samples (1, 28, 28).
///
/// The four idx files in `dir` (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each plain or `.gz`; Fashion-MNIST
/// uses the same names): train on the 60000, validate on the 10000 test images; pixels
/// scaled to [0, 1] (byte / 255, as candle-datasets does; `data.scale` multiplies on
/// top), samples shaped (1, 28, 28), 10 classes. Read by deeptrain's idx reader, or by
/// candle-datasets in a build with the `datasets` feature (same values).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MnistArgs {
    /// The directory holding the idx files (required; nothing is downloaded).
    pub dir: String,
}

/// CIFAR-10 from its local binary batches: pixels byte / 255, samples (3, 32, 32).
///
/// The batches in `dir` (`data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`:
/// the `cifar-10-batches-bin` folder of `cifar-10-binary.tar.gz`), each record a label
/// byte and 3 x 32 x 32 pixel bytes: train on the 50000, validate on the 10000 test
/// images; pixels scaled to [0, 1] (byte / 255, as candle-datasets does; `data.scale`
/// multiplies on top), samples shaped (3, 32, 32). Read by deeptrain's own reader (any
/// number of records per file), or by candle-datasets in a build with the `datasets`
/// feature (exactly 10000 records per file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Cifar10Args {
    /// The directory holding the batches, or the one holding `cifar-10-batches-bin`
    /// (required; nothing is downloaded).
    pub dir: String,
}

/// The MNIST idx files, in the order candle-datasets opens them.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The CIFAR-10 batch files: five train batches, then the test batch.
pub const CIFAR10_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

/// Bytes of one CIFAR-10 record: a label byte and 3 x 32 x 32 pixels (channels first).
pub const CIFAR10_RECORD_BYTES: u64 = 1 + 3 * 32 * 32;

/// Bytes candle-datasets reads from every CIFAR-10 batch file: exactly 10000 records.
pub const CIFAR10_FILE_BYTES: u64 = 10_000 * CIFAR10_RECORD_BYTES;

/// Classes of every set here.
const CLASSES: usize = 10;

/// What a pixel byte is multiplied by: candle-datasets' `tensor / 255.` is
/// `affine(1 / 255, 0)`, i.e. `byte * (1 / 255 as f32) + 0`; the `+ 0` never changes a
/// product of non-negative numbers, so `byte * PIXEL_SCALE` is bitwise the same.
const PIXEL_SCALE: f32 = (1.0f64 / 255.0) as f32;

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
    /// `dir` must be given (errors name the `mnist` source).
    pub fn validate(&self) -> Result<()> {
        self.validate_as("mnist")
    }
    /// `dir` must be given (errors name `source`).
    pub fn validate_as(&self, source: &str) -> Result<()> {
        need_dir(source, &self.dir)
    }
}

impl Cifar10Args {
    /// `dir` must be given.
    pub fn validate(&self) -> Result<()> {
        need_dir("cifar10", &self.dir)
    }
}

/// One line naming the directory and every missing file, saying nothing is downloaded.
fn missing_files(source: &str, dir: &Path, missing: &[String], all: &[&str]) -> Error {
    Error::Data(format!(
        "{source}: {} has no {}; the source reads its files ({}) from local disk, nothing \
         is downloaded",
        dir.display(),
        missing.join(", "),
        all.join(", ")
    ))
}

/// Where each MNIST file is: `dir/NAME` or `dir/NAME.gz`. Files that are neither make
/// one error naming the directory and each of them (`source` names the set).
pub fn mnist_files(source: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in MNIST_FILES {
        let plain = dir.join(name);
        let gz = dir.join(format!("{name}.gz"));
        if plain.is_file() {
            found.push(plain);
        } else if gz.is_file() {
            found.push(gz);
        } else {
            missing.push(format!("{name} (nor {name}.gz)"));
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(missing_files(source, dir, &missing, &MNIST_FILES))
    }
}

/// The CIFAR-10 batch directory (`dir`, or `dir/cifar-10-batches-bin` when `dir` holds
/// no batch but that folder) after checking that every batch file is there: missing
/// ones make one error naming the directory and each of them.
pub fn cifar10_dir(dir: &Path) -> Result<PathBuf> {
    let nested = dir.join("cifar-10-batches-bin");
    let dir = if !CIFAR10_FILES.iter().any(|f| dir.join(f).is_file()) && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let missing: Vec<String> = CIFAR10_FILES
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect();
    if missing.is_empty() {
        Ok(dir)
    } else {
        Err(missing_files("cifar10", &dir, &missing, &CIFAR10_FILES))
    }
}

/// MNIST-format train and test parts (see [`MnistArgs`]) of the set `source` (`mnist`,
/// `fashion_mnist`: names the data and errors), inputs multiplied by `scale`: through
/// candle-datasets with the `datasets` feature, else through [`read_mnist_own`].
pub fn read_mnist(
    source: &str,
    args: &MnistArgs,
    scale: f32,
) -> Result<(InMemoryData, InMemoryData)> {
    #[cfg(feature = "datasets")]
    {
        read_mnist_candle(source, args, scale)
    }
    #[cfg(not(feature = "datasets"))]
    {
        read_mnist_own(source, args, scale)
    }
}

/// CIFAR-10's train and test parts (see [`Cifar10Args`]), inputs multiplied by `scale`:
/// through candle-datasets with the `datasets` feature, else through
/// [`read_cifar10_own`].
pub fn read_cifar10(args: &Cifar10Args, scale: f32) -> Result<(InMemoryData, InMemoryData)> {
    #[cfg(feature = "datasets")]
    {
        read_cifar10_candle(args, scale)
    }
    #[cfg(not(feature = "datasets"))]
    {
        read_cifar10_own(args, scale)
    }
}

/// [`read_mnist`] through deeptrain's idx reader (`.gz` files are inflated into a
/// directory that lives only while they are read: everything ends up in memory).
pub fn read_mnist_own(
    source: &str,
    args: &MnistArgs,
    scale: f32,
) -> Result<(InMemoryData, InMemoryData)> {
    args.validate_as(source)?;
    let files = mnist_files(source, Path::new(&args.dir))?;
    let scratch = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let part = |images: &Path, labels: &Path, part: &str| -> Result<InMemoryData> {
        let x = read_idx(images, scratch.path())?;
        let y = read_idx(labels, scratch.path())?;
        if x.dtype != DType::U8 || x.shape.len() != 3 {
            return Err(Error::Data(format!(
                "{source}: {}: expected u8 images [samples, rows, cols], found {} {:?}",
                images.display(),
                x.dtype.name(),
                x.shape
            )));
        }
        if y.dtype != DType::U8 || y.shape.len() != 1 || y.shape[0] != x.shape[0] {
            return Err(Error::Data(format!(
                "{source}: {}: expected {} u8 labels (one per image of {}), found {} {:?}",
                labels.display(),
                x.shape[0],
                images.display(),
                y.dtype.name(),
                y.shape
            )));
        }
        let data = InMemoryData::classification(
            format!("{source}/{part}"),
            x.raw().iter().map(|&b| pixel(b)).collect(),
            vec![1, x.shape[1], x.shape[2]],
            y.raw().iter().map(|&l| u32::from(l)).collect(),
            CLASSES,
        )?;
        Ok(scaled(data, scale))
    };
    Ok((
        part(&files[0], &files[1], "train")?,
        part(&files[2], &files[3], "test")?,
    ))
}

/// [`read_cifar10`] through deeptrain's own reader: every batch file must hold whole
/// records (its size a multiple of 3073 bytes, at least one) with labels below 10.
pub fn read_cifar10_own(args: &Cifar10Args, scale: f32) -> Result<(InMemoryData, InMemoryData)> {
    args.validate()?;
    let dir = cifar10_dir(Path::new(&args.dir))?;
    let part = |names: &[&str], part: &str| -> Result<InMemoryData> {
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for name in names {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let len = bytes.len() as u64;
            if len == 0 || !len.is_multiple_of(CIFAR10_RECORD_BYTES) {
                return Err(Error::Data(format!(
                    "cifar10: {} has {len} bytes, not a whole number of records ({} bytes: \
                     a label byte and 3 x 32 x 32 pixels each)",
                    path.display(),
                    CIFAR10_RECORD_BYTES
                )));
            }
            for (i, record) in bytes
                .chunks_exact(CIFAR10_RECORD_BYTES as usize)
                .enumerate()
            {
                if usize::from(record[0]) >= CLASSES {
                    return Err(Error::Data(format!(
                        "cifar10: {}: record {i} has label {}, not below {CLASSES}",
                        path.display(),
                        record[0]
                    )));
                }
                labels.push(u32::from(record[0]));
                features.extend(record[1..].iter().map(|&b| pixel(b)));
            }
        }
        let data = InMemoryData::classification(
            format!("cifar10/{part}"),
            features,
            vec![3, 32, 32],
            labels,
            CLASSES,
        )?;
        Ok(scaled(data, scale))
    };
    Ok((
        part(&CIFAR10_FILES[..5], "train")?,
        part(&CIFAR10_FILES[5..], "test")?,
    ))
}

/// [`read_mnist`] through candle-datasets' loader (`datasets` feature).
#[cfg(feature = "datasets")]
pub fn read_mnist_candle(
    source: &str,
    args: &MnistArgs,
    scale: f32,
) -> Result<(InMemoryData, InMemoryData)> {
    args.validate_as(source)?;
    let dir = Path::new(&args.dir);
    let files = mnist_files(source, dir)?;
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
        .map_err(|e| Error::Data(format!("{source}: {}: candle-datasets: {e}", dir.display())))?;
    let (rows, cols) = idx_image_size(&read_from.join(MNIST_FILES[0]))?;
    let (train, test) = super::vision_dataset::from_vision_dataset(source, &ds)?;
    Ok((
        scaled(shaped(train, vec![1, rows, cols]), scale),
        scaled(shaped(test, vec![1, rows, cols]), scale),
    ))
}

/// [`read_cifar10`] through candle-datasets' loader (`datasets` feature): every batch
/// file must hold at least the 10000 records it reads.
#[cfg(feature = "datasets")]
pub fn read_cifar10_candle(args: &Cifar10Args, scale: f32) -> Result<(InMemoryData, InMemoryData)> {
    args.validate()?;
    let dir = cifar10_dir(Path::new(&args.dir))?;
    for name in CIFAR10_FILES {
        let path = dir.join(name);
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        if len < CIFAR10_FILE_BYTES {
            return Err(Error::Data(format!(
                "cifar10: {} has {len} bytes; candle-datasets reads exactly 10000 images \
                 ({CIFAR10_FILE_BYTES} bytes) from every batch file",
                path.display()
            )));
        }
    }
    let ds = candle_datasets::vision::cifar::load_dir(&dir)
        .map_err(|e| Error::Data(format!("cifar10: {}: candle-datasets: {e}", dir.display())))?;
    let (train, test) = super::vision_dataset::from_vision_dataset("cifar10", &ds)?;
    Ok((
        scaled(shaped(train, vec![3, 32, 32]), scale),
        scaled(shaped(test, vec![3, 32, 32]), scale),
    ))
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

/// `data` with samples of `shape` (same number of values).
#[cfg(feature = "datasets")]
fn shaped(mut data: InMemoryData, shape: Vec<usize>) -> InMemoryData {
    if shape.iter().product::<usize>() == data.sample_shape.iter().product::<usize>() {
        data.sample_shape = shape;
    }
    data
}

/// A pixel byte as the value candle-datasets gives it (see [`PIXEL_SCALE`]).
fn pixel(b: u8) -> f32 {
    f32::from(b) * PIXEL_SCALE
}

/// `data` with its inputs multiplied by `scale` (`data.scale`), as both readers do.
fn scaled(mut data: InMemoryData, scale: f32) -> InMemoryData {
    if scale != 1.0 {
        data.features.iter_mut().for_each(|v| *v *= scale);
    }
    data
}
