//! AutoData: inference, formats, batching, shuffling, editable sets, time-series
//! windows, preprocessing, preloading and bad input, all with real files written here.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::scratch;
use candle_core::{DType as CDType, Device, Tensor};
use deeptrain::data_loaders::array::{ArrayData, Bytes, DType};
use deeptrain::data_loaders::auto::{InputDType, Mode};
use deeptrain::data_loaders::csv_file::LabelColumn;
use deeptrain::data_loaders::timeseries::WindowLabels;
use deeptrain::data_loaders::{
    AutoData, Batch, BatchCtx, DataLoader, LoadedFile, Preprocessor, SetRef, TimeseriesWindows,
};
use deeptrain::rng::RngStream;
use deeptrain::state::DataCursor;

// ---- writing files ----------------------------------------------------------------

/// An .npy file written byte by byte per the NumPy format spec (version 1.0): magic
/// `\x93NUMPY`, version 1.0, u16 little-endian header length, the header dict padded with
/// spaces and ended by `\n` so the data starts at a multiple of 64, then the data.
fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.div_ceil(64) * 64 - unpadded));
    header.push('\n');
    let mut out = vec![0x93, b'N', b'U', b'M', b'P', b'Y', 1, 0];
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn f32_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `n` samples of shape `(2, 3)` whose every value is `first_id + i` (the sample's id).
fn write_ids(path: &Path, first_id: usize, n: usize) {
    let v: Vec<f32> = (0..n)
        .flat_map(|i| std::iter::repeat_n((first_id + i) as f32, 6))
        .collect();
    write(path, &npy_bytes("<f4", &[n, 2, 3], &f32_le(&v)));
}

/// Files `batch_{num}.npy` of the given sizes holding consecutive sample ids, and
/// `labels.npy` with label `id % 5` (i64).
fn id_dir(name: &str, files: &[(u64, usize)]) -> PathBuf {
    let dir = scratch(name);
    let mut id = 0;
    for (num, n) in files {
        write_ids(&dir.join(format!("batch_{num}.npy")), id, *n);
        id += n;
    }
    let labels: Vec<u8> = (0..id)
        .flat_map(|i| ((i % 5) as i64).to_le_bytes())
        .collect();
    write(&dir.join("labels.npy"), &npy_bytes("<i8", &[id], &labels));
    dir
}

/// Sample ids of a batch (first value of each sample).
fn ids(x: &Tensor) -> Vec<usize> {
    x.flatten_from(1)
        .unwrap()
        .narrow(1, 0, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_dtype(CDType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

/// A fresh cursor over `loader`, as a trainer keeps one (the loader's state inside).
fn cursor(loader: &AutoData) -> DataCursor {
    DataCursor::new(loader.new_state())
}

/// Plans the cursor's next epoch, as the trainer does; returns its sets.
fn planned(loader: &AutoData, c: &mut DataCursor) -> Vec<String> {
    let epoch = c.epoch + 1;
    let sets = loader.plan_epoch(epoch, &mut c.loader).unwrap();
    c.start_epoch(epoch, sets.clone());
    sets
}

/// Loads set `name` at the cursor's epoch and window.
fn load_at(loader: &impl DataLoader, c: &DataCursor, name: &str) -> deeptrain::Result<Batch> {
    let at = SetRef::new(name)
        .in_epoch(c.epoch)
        .window(c.window as usize);
    loader.load(&c.loader, at, &Device::Cpu)
}

/// Ids of every sample of an epoch, batch by batch.
fn epoch_ids(loader: &AutoData, c: &mut DataCursor) -> Vec<Vec<usize>> {
    planned(loader, c)
        .iter()
        .map(|n| ids(&load_at(loader, c, n).unwrap().x))
        .collect()
}

fn err(r: deeptrain::Result<AutoData>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

// ---- 1. inference ---------------------------------------------------------------------

#[test]
fn sets_are_sorted_numerically_and_the_most_common_format_wins() {
    let files: Vec<(u64, usize)> = (0..12).map(|i| (i, 2)).collect();
    let dir = id_dir("auto-numeric", &files);
    write(&dir.join("other_1.csv"), b"1,2\n3,4\n");
    write(&dir.join("other_2.csv"), b"1,2\n3,4\n");
    write(&dir.join("notes.txt"), b"hello");
    let loader = AutoData::from_dir(&dir).unwrap().build().unwrap();
    let inf = loader.inferred();
    assert_eq!(inf.format, "npy");
    assert_eq!(inf.mode, Mode::Files);
    assert_eq!(inf.base_name, "batch_");
    let names: Vec<&str> = inf.sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]
    );
    assert_eq!(inf.num_samples, 24);
    assert_eq!(inf.sample_shape, [2, 3]);
    assert_eq!(inf.dtype, DType::F32);
    assert_eq!(inf.labels.source, "labels.npy");
    assert_eq!(inf.labels.num_classes, Some(5));
    assert_eq!(inf.ignored.len(), 3, "{:?}", inf.ignored);
    // Default batch size standalone: one file per batch, sets in numeric order.
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), names);
    let b = load_at(&loader, &state, "10").unwrap();
    assert_eq!(ids(&b.x), [20, 21]);
    assert_eq!(b.y.to_vec1::<u32>().unwrap(), [0, 1]);

    // Overrides: format, base name and set numbers.
    let csv = AutoData::from_dir(&dir)
        .unwrap()
        .format("csv")
        .no_labels()
        .build()
        .unwrap();
    assert_eq!(csv.inferred().format, "csv");
    assert_eq!(csv.inferred().base_name, "other_");
    let some = AutoData::from_dir(&dir)
        .unwrap()
        .set_nums([11, 3])
        .build()
        .unwrap();
    let names: Vec<&str> = some
        .inferred()
        .sets
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["3", "11"]);
    // Labels follow the selected files: set 3 holds ids 6, 7.
    let mut st = cursor(&some);
    planned(&some, &mut st);
    let b = load_at(&some, &st, "3").unwrap();
    assert_eq!(b.y.to_vec1::<u32>().unwrap(), [1, 2]);
}

#[test]
fn a_single_file_is_dataset_mode() {
    let dir = scratch("auto-dataset");
    write_ids(&dir.join("train.npy"), 0, 10);
    let labels: Vec<u8> = (0..10u8).collect();
    write(&dir.join("labels.npy"), &npy_bytes("|u1", &[10], &labels));
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(4)
        .build()
        .unwrap();
    assert_eq!(loader.inferred().mode, Mode::Dataset);
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), ["0", "1", "2"]);
    let all = epoch_ids(&loader, &mut state);
    assert_eq!(all, [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    // from_file is the same, and drop_last drops the partial batch.
    let f = AutoData::from_file(dir.join("train.npy"))
        .unwrap()
        .batch_size(4)
        .drop_last(true)
        .build()
        .unwrap();
    let mut state = cursor(&f);
    assert_eq!(planned(&f, &mut state), ["0", "1"]);
    assert_eq!(f.num_classes(), Some(10));
}

#[test]
fn labels_from_csv_file_explicit_path_and_per_set_shape() {
    let dir = id_dir("auto-labels", &[(0, 3), (1, 3)]);
    std::fs::remove_file(dir.join("labels.npy")).unwrap();
    write(&dir.join("labels.csv"), b"label\n4\n3\n2\n1\n0\n4\n");
    let loader = AutoData::from_dir(&dir).unwrap().build().unwrap();
    assert_eq!(loader.inferred().labels.source, "labels.csv");
    let mut state = cursor(&loader);
    planned(&loader, &mut state);
    let y = load_at(&loader, &state, "1").unwrap().y;
    assert_eq!(y.to_vec1::<u32>().unwrap(), [1, 0, 4]);

    // An explicit path elsewhere, shaped (n_sets, samples_per_set) as DeepTrain saves it;
    // float labels are regression targets unless classes are asked for.
    let elsewhere = scratch("auto-labels-elsewhere").join("targets.npy");
    let v: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
    write(&elsewhere, &npy_bytes("<f4", &[2, 3], &f32_le(&v)));
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .labels(&elsewhere)
        .build()
        .unwrap();
    assert_eq!(loader.inferred().labels.kind, "values");
    assert_eq!(loader.num_classes(), None);
    let mut state = cursor(&loader);
    planned(&loader, &mut state);
    let y = load_at(&loader, &state, "1").unwrap().y;
    assert_eq!(y.to_vec1::<f32>().unwrap(), [1.5, 2.0, 2.5]);
    let as_classes = AutoData::from_dir(&dir)
        .unwrap()
        .labels(&elsewhere)
        .num_classes(3)
        .build();
    // 0.5 is not a class id: the error names the file, the value and the index.
    let e = err(as_classes);
    assert!(
        e.contains("targets.npy") && e.contains("0.5") && e.contains("index 1"),
        "{e}"
    );
}

#[test]
fn safetensors_files_with_x_and_y() {
    use safetensors::tensor::{serialize, Dtype, TensorView};
    let dir = scratch("auto-safetensors");
    for (num, n) in [(0usize, 3usize), (1, 2)] {
        let x = f32_le(
            &(0..n * 4)
                .map(|v| (num * 100 + v) as f32)
                .collect::<Vec<_>>(),
        );
        let y: Vec<u8> = (0..n as i64)
            .flat_map(|v| (v + num as i64).to_le_bytes())
            .collect();
        let tensors = vec![
            ("x", TensorView::new(Dtype::F32, vec![n, 4], &x).unwrap()),
            ("y", TensorView::new(Dtype::I64, vec![n], &y).unwrap()),
        ];
        let bytes = serialize(tensors, None).unwrap();
        write(&dir.join(format!("part{num}.safetensors")), &bytes);
    }
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(5)
        .build()
        .unwrap();
    let inf = loader.inferred();
    assert_eq!(inf.format, "safetensors");
    assert_eq!(inf.labels.source, "in file (safetensors key \"y\")");
    assert_eq!(inf.labels.num_classes, Some(3));
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), ["0+1"]);
    let b = load_at(&loader, &state, "0+1").unwrap();
    assert_eq!(b.x.dims(), [5, 4]);
    assert_eq!(b.y.to_vec1::<u32>().unwrap(), [0, 1, 2, 1, 2]);
    assert_eq!(
        b.x.get(3).unwrap().to_vec1::<f32>().unwrap(),
        [100.0, 101.0, 102.0, 103.0]
    );
}

fn idx_bytes(type_code: u8, shape: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, type_code, shape.len() as u8];
    for d in shape {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_image_and_label_pairs_plain_and_gzipped() {
    let dir = scratch("auto-idx");
    let cache = scratch("auto-idx-cache");
    let images: Vec<u8> = (0..5 * 3 * 2).map(|v| v as u8).collect();
    let labels = [3u8, 1, 4, 1, 5];
    write(
        &dir.join("train-images-idx3-ubyte.gz"),
        &gz(&idx_bytes(0x08, &[5, 3, 2], &images)),
    );
    write(
        &dir.join("train-labels-idx1-ubyte.gz"),
        &gz(&idx_bytes(0x08, &[5], &labels)),
    );
    write(
        &dir.join("t10k-images-idx3-ubyte"),
        &idx_bytes(0x08, &[2, 3, 2], &images[..12]),
    );
    write(
        &dir.join("t10k-labels-idx1-ubyte"),
        &idx_bytes(0x08, &[2], &labels[..2]),
    );
    // Two data files without set numbers: the training split is chosen.
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .cache_dir(&cache)
        .input_dtype(InputDType::Native)
        .batch_size(2)
        .build()
        .unwrap();
    let inf = loader.inferred();
    assert_eq!((inf.format.as_str(), inf.mode), ("idx", Mode::Dataset));
    assert_eq!(inf.num_samples, 5);
    assert_eq!(inf.sample_shape, [3, 2]);
    assert_eq!(inf.labels.num_classes, Some(6));
    assert_eq!(
        inf.labels.class_counts.as_deref(),
        Some(&[0, 2, 0, 1, 1, 1][..])
    );
    assert!(cache.join("train-images-idx3-ubyte").is_file());
    let mut state = cursor(&loader);
    planned(&loader, &mut state);
    let b = load_at(&loader, &state, "1").unwrap();
    assert_eq!(b.x.dtype(), CDType::U8);
    assert_eq!(b.x.dims(), [2, 3, 2]);
    assert_eq!(b.y.to_vec1::<u32>().unwrap(), [4, 1]);
    assert_eq!(
        b.x.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
        (12..24).collect::<Vec<u8>>()
    );
    // The other split, by name.
    let test = AutoData::from_dir(&dir)
        .unwrap()
        .file("t10k-images-idx3-ubyte")
        .build()
        .unwrap();
    assert_eq!(test.inferred().num_samples, 2);
    assert_eq!(
        test.inferred().labels.class_counts.as_deref(),
        Some(&[0, 1, 0, 1][..])
    );
}

#[test]
fn csv_with_header_and_label_column() {
    let dir = scratch("auto-csv");
    write(
        &dir.join("data_0.csv"),
        b"a,target,b\n1.5,1,2\n3,0,4\n5,2,6\n",
    );
    write(&dir.join("data_1.csv"), b"a,target,b\n7,1,8\n");
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .label_column(LabelColumn::Name("target".into()))
        .batch_size(2)
        .build()
        .unwrap();
    assert_eq!(loader.inferred().format, "csv");
    assert_eq!(loader.inferred().sample_shape, [2]);
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), ["0-a", "0-b+1"]);
    let b = load_at(&loader, &state, "0-b+1").unwrap();
    assert_eq!(b.x.to_vec2::<f32>().unwrap(), [[5.0, 6.0], [7.0, 8.0]]);
    assert_eq!(b.y.to_vec1::<u32>().unwrap(), [2, 1]);
}

#[test]
fn csv_with_quoted_fields() {
    let dir = scratch("auto-csv-quoted");
    write(
        &dir.join("data_0.csv"),
        b"\"a\",\"target, class\",\"b\"\r\n\"1.5\",\"1\",\"2\"\r\n3,0,\"4\"\r\n",
    );
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .label_column(LabelColumn::Name("target, class".into()))
        .batch_size(2)
        .build()
        .unwrap();
    assert_eq!(loader.inferred().format, "csv");
    assert_eq!(loader.inferred().sample_shape, [2]);
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), ["0"]);
    let b = load_at(&loader, &state, "0").unwrap();
    assert_eq!(b.x.to_vec2::<f32>().unwrap(), [[1.5, 2.0], [3.0, 4.0]]);
    assert_eq!(b.y.to_vec1::<u32>().unwrap(), [1, 0]);
}

#[test]
fn user_loader_for_another_extension() {
    let dir = scratch("auto-custom");
    for (i, n) in [(0u8, 3usize), (1, 1)] {
        let body: Vec<u8> = (0..n as u8).map(|v| v + 10 * i).collect();
        write(&dir.join(format!("s{i}.bin")), &body);
    }
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .loader("bin", |path: &Path| -> deeptrain::Result<LoadedFile> {
            let raw = std::fs::read(path).map_err(|e| deeptrain::Error::io(path, e))?;
            let n = raw.len();
            let labels = raw.iter().map(|v| v % 2).collect();
            Ok(LoadedFile {
                data: ArrayData::new(
                    path,
                    DType::U8,
                    vec![n, 1],
                    Bytes::Owned(std::sync::Arc::new(raw)),
                )?,
                labels: Some(ArrayData::new(
                    path,
                    DType::U8,
                    vec![n],
                    Bytes::Owned(std::sync::Arc::new(labels)),
                )?),
            })
        })
        .batch_size(4)
        .build()
        .unwrap();
    assert_eq!(loader.inferred().format, "bin");
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), ["0+1"]);
    let b = load_at(&loader, &state, "0+1").unwrap();
    assert_eq!(
        b.x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [0.0, 1.0, 2.0, 10.0]
    );
    assert_eq!(b.y.to_vec1::<u32>().unwrap(), [0, 1, 0, 0]);
}

// ---- 2. npy dtypes, NumPy interop ---------------------------------------------------

#[test]
fn npy_every_dtype_written_byte_by_byte() {
    let dir = scratch("auto-dtypes");
    let vals = [1.0f64, -2.0, 3.0, 4.0, 5.0, 6.0];
    let cases: [(&str, DType, Vec<u8>); 6] = [
        (
            "<f4",
            DType::F32,
            vals.iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect(),
        ),
        (
            "<f8",
            DType::F64,
            vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<f2",
            DType::F16,
            vals.iter()
                .flat_map(|v| half::f16::from_f64(*v).to_le_bytes())
                .collect(),
        ),
        (
            "|u1",
            DType::U8,
            vals.iter().map(|v| v.abs() as u8).collect(),
        ),
        (
            "<i4",
            DType::I32,
            vals.iter()
                .flat_map(|v| (*v as i32).to_le_bytes())
                .collect(),
        ),
        (
            "<i8",
            DType::I64,
            vals.iter()
                .flat_map(|v| (*v as i64).to_le_bytes())
                .collect(),
        ),
    ];
    for (descr, dtype, bytes) in cases {
        let sub = dir.join(dtype.name());
        std::fs::create_dir_all(&sub).unwrap();
        write(&sub.join("x.npy"), &npy_bytes(descr, &[3, 2], &bytes));
        for input in [InputDType::F32, InputDType::Native] {
            let loader = AutoData::from_dir(&sub)
                .unwrap()
                .input_dtype(input)
                .batch_size(3)
                .build()
                .unwrap();
            assert_eq!(loader.inferred().dtype, dtype);
            let mut state = cursor(&loader);
            planned(&loader, &mut state);
            let b = load_at(&loader, &state, "0").unwrap();
            assert_eq!(b.x.dims(), [3, 2]);
            let want: Vec<f32> = vals
                .iter()
                .map(|v| {
                    if dtype == DType::U8 {
                        v.abs() as f32
                    } else {
                        *v as f32
                    }
                })
                .collect();
            let got =
                b.x.to_dtype(CDType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
            assert_eq!(got, want, "{descr} {input:?}");
            let want_dtype = match (input, dtype) {
                (InputDType::F32, _) => CDType::F32,
                (_, DType::F64) => CDType::F64,
                (_, DType::F16) => CDType::F16,
                (_, DType::U8) => CDType::U8,
                (_, DType::I32) => CDType::I32,
                (_, DType::I64) => CDType::I64,
                (_, DType::F32) => CDType::F32,
            };
            assert_eq!(b.x.dtype(), want_dtype);
        }
    }
}

#[test]
fn npy_written_by_numpy_itself() {
    let dir = scratch("auto-numpy");
    let script = format!(
        "import numpy as np\n\
         np.save(r'{0}/batch_0.npy', np.arange(24, dtype=np.float64).reshape(4, 3, 2))\n\
         np.save(r'{0}/batch_1.npy', np.arange(24, 36, dtype=np.float64).reshape(2, 3, 2))\n\
         np.save(r'{0}/labels.npy', np.array([2, 0, 1, 1, 0, 2], dtype=np.int32))\n",
        dir.display()
    );
    let ran = std::process::Command::new("python3")
        .args(["-c", &script])
        .output();
    match ran {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!(
                "note: python3 with numpy is not available; skipping the NumPy interop check"
            );
            return;
        }
    }
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(3)
        .build()
        .unwrap();
    assert_eq!(loader.inferred().dtype, DType::F64);
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), ["0-a", "0-b+1"]);
    let b = load_at(&loader, &state, "0-b+1").unwrap();
    let got = b.x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(got, (18..36).map(|v| v as f32).collect::<Vec<_>>());
    assert_eq!(b.y.to_vec1::<u32>().unwrap(), [1, 0, 2]);
}

// ---- 3. flexible batch size, zero copy ------------------------------------------------

#[test]
fn files_are_combined_split_and_streamed_at_any_ratio() {
    let dir = id_dir("auto-ratio", &[(12, 64), (13, 64), (14, 64), (15, 64)]);
    let loader = |bs: usize, drop_last: bool| {
        AutoData::from_dir(&dir)
            .unwrap()
            .batch_size(bs)
            .drop_last(drop_last)
            .build()
            .unwrap()
    };
    let l = loader(128, false);
    let mut s = cursor(&l);
    assert_eq!(planned(&l, &mut s), ["12+13", "14+15"]);
    let l = loader(32, false);
    let mut s = cursor(&l);
    let names = planned(&l, &mut s);
    assert_eq!(&names[..3], ["12-a", "12-b", "13-a"]);
    assert_eq!(names.len(), 8);
    // 100 does not divide 64: batches span file boundaries; the last one is partial.
    let l = loader(100, false);
    let mut s = cursor(&l);
    assert_eq!(planned(&l, &mut s), ["12+13-a", "13-b+14+15-a", "15-b"]);
    let all: Vec<usize> = epoch_ids(&l, &mut s).into_iter().flatten().collect();
    assert_eq!(all, (0..256).collect::<Vec<_>>());
    let l = loader(100, true);
    let mut s = cursor(&l);
    let batches = epoch_ids(&l, &mut s);
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(|b| b.len() == 100));
}

#[test]
fn unequal_files_stream_every_sample_once_and_views_are_zero_copy() {
    let sizes = [(0, 300), (1, 100), (2, 250), (10, 50), (3, 128)];
    let dir = id_dir("auto-unequal", &sizes);
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(128)
        .build()
        .unwrap();
    let mut state = cursor(&loader);
    assert_eq!(
        planned(&loader, &mut state),
        ["0-a", "0-b", "0-c+1-a", "1-b+2-a", "2-b", "2-c+3-a", "3-b+10"]
    );
    // Set order 0, 1, 2, 3, 10 with ids assigned in the listing order 0, 1, 2, 10, 3.
    let mut want: Vec<usize> = (0..650).collect();
    want.extend(700..828);
    want.extend(650..700);
    let got: Vec<usize> = epoch_ids(&loader, &mut state)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(got, want);
    // Views point into the memory map: one slice per file part, nothing copied.
    let view = loader.view(&state.loader, "0-c+1-a").unwrap();
    assert!(view.is_contiguous());
    assert_eq!(view.len(), 128);
    let chunks = view.chunks();
    assert_eq!(chunks.len(), 2);
    for (chunk, part) in chunks.iter().zip(&view.parts) {
        let raw = part.data.raw();
        let inside = raw.as_ptr_range().contains(&chunk.as_ptr());
        assert!(inside && matches!(part.data.bytes, Bytes::Mapped { .. }));
    }
    assert_eq!(chunks[0].len(), 44 * 24);
}

// ---- 4. shuffling -----------------------------------------------------------------------

#[test]
fn shuffling_is_seeded_per_epoch_and_survives_a_resume() {
    let sizes: Vec<(u64, usize)> = (0..8).map(|i| (i, 10 + i as usize)).collect();
    let dir = id_dir("auto-shuffle", &sizes);
    let build = |seed: u64, samples: bool| {
        AutoData::from_dir(&dir)
            .unwrap()
            .batch_size(16)
            .shuffle(true)
            .shuffle_samples(samples)
            .seed(seed)
            .build()
            .unwrap()
    };
    let (a, b, c) = (build(5, false), build(5, false), build(6, false));
    let (mut sa, mut sb, mut sc) = (cursor(&a), cursor(&b), cursor(&c));
    let ea1 = epoch_ids(&a, &mut sa);
    let ea2 = epoch_ids(&a, &mut sa);
    assert_eq!(ea1, epoch_ids(&b, &mut sb), "same seed, same epoch 1");
    assert_eq!(ea2, epoch_ids(&b, &mut sb), "same seed, same epoch 2");
    assert_ne!(ea1, ea2, "epochs differ");
    assert_ne!(ea1, epoch_ids(&c, &mut sc), "seeds differ");
    let total: usize = sizes.iter().map(|s| s.1).sum();
    for epoch in [&ea1, &ea2] {
        let mut all: Vec<usize> = epoch.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..total).collect::<Vec<_>>());
    }
    // Without sample shuffling each file's samples stay in order within the stream.
    assert!(ea1
        .iter()
        .flatten()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] + 1 == *w[1]));

    // Samples within files too; a state saved mid-epoch (bincode, as in checkpoints)
    // and handed to a fresh loader gives the same remaining batches.
    let s1 = build(9, true);
    let mut st = cursor(&s1);
    let names = planned(&s1, &mut st);
    let view = s1.view(&st.loader, &names[0]).unwrap();
    assert!(!view.is_contiguous());
    let reference: Vec<Vec<usize>> = names
        .iter()
        .map(|n| ids(&load_at(&s1, &st, n).unwrap().x))
        .collect();
    let mut all: Vec<usize> = reference.iter().flatten().copied().collect();
    all.sort();
    assert_eq!(all, (0..total).collect::<Vec<_>>());
    st.sets_done = names[..3].to_vec();
    st.sets_to_process = names[3..].to_vec();
    let bytes = bincode::serde::encode_to_vec(&st, bincode::config::standard()).unwrap();
    let (restored, _): (DataCursor, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    let s2 = build(9, true);
    for (k, n) in restored.sets_to_process.iter().enumerate() {
        let got = ids(&load_at(&s2, &restored, n).unwrap().x);
        assert_eq!(got, reference[3 + k]);
    }
    // And the next epoch is the same for both.
    let mut st2 = restored;
    assert_eq!(epoch_ids(&s1, &mut st), epoch_ids(&s2, &mut st2));
}

#[test]
fn dataset_mode_shuffles_chunks_or_all_samples() {
    let dir = scratch("auto-dataset-shuffle");
    write_ids(&dir.join("all.npy"), 0, 50);
    let build = |samples: bool| {
        AutoData::from_file(dir.join("all.npy"))
            .unwrap()
            .batch_size(10)
            .shuffle(true)
            .shuffle_samples(samples)
            .seed(1)
            .build()
            .unwrap()
    };
    let l = build(false);
    let mut s = cursor(&l);
    let names = planned(&l, &mut s);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["0", "1", "2", "3", "4"]);
    // A chunk always holds the same samples.
    let b = load_at(&l, &s, "3").unwrap();
    assert_eq!(ids(&b.x), (30..40).collect::<Vec<_>>());
    let l = build(true);
    let mut s = cursor(&l);
    let e = epoch_ids(&l, &mut s);
    assert!(e.iter().any(|b| b.windows(2).any(|w| w[0] + 1 != w[1])));
}

// ---- 5. editable set numbers --------------------------------------------------------

#[test]
fn sets_can_be_skipped_or_repeated_by_editing_the_state() {
    let dir = id_dir("auto-edit", &[(0, 8), (1, 8), (2, 8), (3, 8)]);
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(8)
        .build()
        .unwrap();
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), ["0", "1", "2", "3"]);
    state.sets_to_process = vec!["3".into(), "1".into(), "1".into()];
    let b = load_at(&loader, &state, "3").unwrap();
    assert_eq!(ids(&b.x)[0], 24);
    // Whole sets can be named even when the plan does not hold them.
    let b = load_at(&loader, &state, "2+0").unwrap();
    assert_eq!(
        ids(&b.x),
        [16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7]
    );
    let e = load_at(&loader, &state, "7").unwrap_err().to_string();
    assert!(e.contains("no set named \"7\""), "{e}");
}

// ---- 6. time series windows -------------------------------------------------------------

#[test]
fn timeseries_windows_cut_sets_and_cycle_start_offsets() {
    let dir = scratch("auto-windows");
    // 3 sequences of 20 steps, 2 features; x[s, t, f] = 100 s + t; y = t (per step).
    let x: Vec<f32> = (0..3)
        .flat_map(|s| (0..20).flat_map(move |t| [100.0 * s as f32 + t as f32; 2]))
        .collect();
    write(
        &dir.join("seq.npy"),
        &npy_bytes("<f4", &[3, 20, 2], &f32_le(&x)),
    );
    let y: Vec<f32> = (0..3).flat_map(|_| (0..20).map(|t| t as f32)).collect();
    write(
        &dir.join("labels.npy"),
        &npy_bytes("<f4", &[3, 20, 1], &f32_le(&y)),
    );
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(2)
        .preprocessor(TimeseriesWindows::new(6, 4).start_increments(vec![0, 3]))
        .build()
        .unwrap();
    let mut state = cursor(&loader);
    assert_eq!(planned(&loader, &mut state), ["0", "1"]);
    assert_eq!(state.loader.preprocessor_state, "0");
    // Epoch 1: starts 0, 4, 8, 12 (12 + 6 <= 20): 4 windows.
    let mut starts = Vec::new();
    loop {
        let b = load_at(&loader, &state, "0").unwrap();
        assert_eq!(b.windows, 4);
        assert_eq!(b.x.dims(), [2, 6, 2]);
        assert_eq!(b.y.dims(), [2, 6, 1]);
        let t0 =
            b.x.get(1)
                .unwrap()
                .get(0)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()[0];
        let y0 =
            b.y.get(1)
                .unwrap()
                .get(0)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()[0];
        assert_eq!(t0 - 100.0, y0);
        starts.push(y0 as usize);
        if b.is_last_window() {
            break;
        }
        state.window += 1;
    }
    assert_eq!(starts, [0, 4, 8, 12]);
    assert!(load_at(&loader, &state, "0").is_ok());
    state.window = 4;
    let e = load_at(&loader, &state, "0").unwrap_err().to_string();
    assert!(e.contains("window 4") && e.contains("4 windows"), "{e}");
    // Epoch 2 starts at 3: 3, 7, 11 (17 > 20 - 6 + ... no 15 + 6 > 20).
    planned(&loader, &mut state);
    assert_eq!(state.loader.preprocessor_state, "3");
    let b = load_at(&loader, &state, "1").unwrap();
    assert_eq!((b.windows, b.size()), (3, 1));
    // Epoch 3 cycles back to 0.
    planned(&loader, &mut state);
    assert_eq!(state.loader.preprocessor_state, "0");
    // Sequence labels are handed to every window unchanged.
    let w = TimeseriesWindows::new(5, 5).labels(WindowLabels::Sequence);
    let st =
        deeptrain::data_loaders::LoaderState::new(2, false, false, &RngStream::with_stream(0, 0));
    let ctx = BatchCtx {
        epoch: 1,
        set_name: "s",
        window: 1,
        epoch_state: "",
        state: &st,
    };
    let xs = Tensor::zeros((2, 10, 1), CDType::F32, &Device::Cpu).unwrap();
    let ys = Tensor::new(&[1u32, 0], &Device::Cpu).unwrap();
    assert_eq!(w.num_windows(&xs, &ctx).unwrap(), 2);
    let (wx, wy) = w.window(&xs, &ys, &ctx).unwrap();
    assert_eq!(wx.dims(), [2, 5, 1]);
    assert_eq!(wy.to_vec1::<u32>().unwrap(), [1, 0]);
    // Too short a set is an error naming it.
    let w = TimeseriesWindows::new(11, 1);
    let e = w.process(xs, ys, &ctx).unwrap_err().to_string();
    assert!(e.contains("set s") && e.contains("10 time steps"), "{e}");
}

// ---- 7. preprocessors and preloading ----------------------------------------------------

/// Scales inputs by a factor drawn once per epoch (from the loader's stream), to show the
/// per-epoch hook: the factor lives in the loader state, so resumes reproduce it.
struct RandomScale;

impl Preprocessor for RandomScale {
    fn name(&self) -> String {
        "random scale".into()
    }
    fn on_epoch(&self, _epoch: u64, rng: &mut RngStream) -> deeptrain::Result<String> {
        Ok(format!("{}", 1 + rng.below(9)))
    }
    fn process(&self, x: Tensor, y: Tensor, ctx: &BatchCtx) -> deeptrain::Result<(Tensor, Tensor)> {
        let f: f64 = ctx.epoch_state.parse().unwrap();
        Ok(((x * f)?, y))
    }
}

#[test]
fn preprocessor_hooks_and_preloading() {
    let dir = id_dir("auto-preprocess", &[(0, 4), (1, 4), (2, 4)]);
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(4)
        .preprocessor(RandomScale)
        .seed(3)
        .build()
        .unwrap();
    assert_eq!(
        loader.inferred().preprocessor.as_deref(),
        Some("random scale")
    );
    let mut state = cursor(&loader);
    planned(&loader, &mut state);
    let f: usize = state.loader.preprocessor_state.parse().unwrap();
    let b = load_at(&loader, &state, "1").unwrap();
    assert_eq!(ids(&b.x), [4 * f, 5 * f, 6 * f, 7 * f]);
    // A closure is a preprocessor too.
    let closure = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(4)
        .preprocessor(
            |x: Tensor, y: Tensor| -> deeptrain::Result<(Tensor, Tensor)> {
                Ok(((x + 1000.0)?, y))
            },
        )
        .build()
        .unwrap();
    let mut s = cursor(&closure);
    planned(&closure, &mut s);
    assert_eq!(ids(&load_at(&closure, &s, "0").unwrap().x)[0], 1000);

    // Preloaded sets hold the same batches, from RAM.
    let mapped = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(6)
        .build()
        .unwrap();
    for (preload, want) in [(true, vec!["0", "1", "2"]), (false, vec!["1"])] {
        let b = AutoData::from_dir(&dir).unwrap().batch_size(6);
        let b = if preload {
            b.preload(true)
        } else {
            b.preload_sets(["1"])
        };
        let l = b.build().unwrap();
        assert_eq!(l.inferred().preloaded, want);
        let mut s1 = cursor(&mapped);
        let mut s2 = cursor(&l);
        assert_eq!(epoch_ids(&mapped, &mut s1), epoch_ids(&l, &mut s2));
        let view = l.view(&s2.loader, "1-b+2").unwrap();
        assert!(matches!(view.parts[0].data.bytes, Bytes::Owned(_)));
        let mapped_or_not = matches!(view.parts[1].data.bytes, Bytes::Owned(_));
        assert_eq!(mapped_or_not, preload);
    }
    let e = err(AutoData::from_dir(&dir)
        .unwrap()
        .preload_sets(["9"])
        .build());
    assert!(e.contains("\"9\""), "{e}");
}

// ---- 8. bad input --------------------------------------------------------------------------

#[test]
fn bad_input_is_a_clear_error_naming_the_file_and_numbers() {
    // Truncated npy.
    let dir = id_dir("auto-bad-truncated", &[(0, 4), (1, 4)]);
    let full = std::fs::read(dir.join("batch_1.npy")).unwrap();
    write(&dir.join("batch_1.npy"), &full[..full.len() - 10]);
    let e = err(AutoData::from_dir(&dir).unwrap().build());
    assert!(
        e.contains("batch_1.npy") && e.contains("96 bytes") && e.contains("only 86"),
        "{e}"
    );

    // A header that lies about the shape (says 3 samples, holds 4).
    let dir = id_dir("auto-bad-header", &[(0, 4), (1, 4)]);
    let v = f32_le(&[0.0; 24]);
    let mut lie = npy_bytes("<f4", &[3, 2, 3], &v[..72]);
    lie.extend_from_slice(&v[72..]);
    write(&dir.join("batch_1.npy"), &lie);
    let e = err(AutoData::from_dir(&dir).unwrap().build());
    assert!(
        e.contains("batch_1.npy") && e.contains("(3, 2, 3)") && e.contains("24 extra"),
        "{e}"
    );

    // Labels and data disagree on the sample count.
    let dir = id_dir("auto-bad-count", &[(0, 4), (1, 3)]);
    let labels: Vec<u8> = (0..8i64).flat_map(|v| v.to_le_bytes()).collect();
    write(&dir.join("labels.npy"), &npy_bytes("<i8", &[8], &labels));
    let e = err(AutoData::from_dir(&dir).unwrap().build());
    assert!(
        e.contains("labels.npy") && e.contains("8 labels") && e.contains("7 samples"),
        "{e}"
    );
    assert!(
        e.contains("batch_0.npy 4") && e.contains("batch_1.npy 3"),
        "{e}"
    );

    // Mixed sample shapes across files.
    let dir = id_dir("auto-bad-shapes", &[(0, 2), (1, 2)]);
    write(
        &dir.join("batch_1.npy"),
        &npy_bytes("<f4", &[2, 3, 2], &f32_le(&[0.0; 12])),
    );
    let e = err(AutoData::from_dir(&dir).unwrap().build());
    assert!(
        e.contains("batch_1.npy") && e.contains("(3, 2)") && e.contains("(2, 3)"),
        "{e}"
    );

    // An empty directory.
    let dir = scratch("auto-bad-empty");
    let e = err(AutoData::from_dir(&dir).unwrap().build());
    assert!(e.contains("auto-bad-empty") && e.contains("empty"), "{e}");

    // Only files with an unknown extension and no loader.
    write(&dir.join("a.bin"), b"12");
    write(&dir.join("b.bin"), b"34");
    let e = err(AutoData::from_dir(&dir).unwrap().build());
    assert!(e.contains("2 x .bin") && e.contains("loader"), "{e}");

    // A missing directory, and in-file labels that do not match.
    assert!(AutoData::from_dir(dir.join("nope")).is_err());
    let dir = scratch("auto-bad-safetensors");
    let x = f32_le(&[0.0; 4]);
    let y: Vec<u8> = [0i64, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let bytes = safetensors::tensor::serialize(
        vec![
            (
                "x",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4, 1], &x)
                    .unwrap(),
            ),
            (
                "y",
                safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![3], &y).unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    write(&dir.join("d.safetensors"), &bytes);
    let e = err(AutoData::from_dir(&dir).unwrap().build());
    assert!(
        e.contains("d.safetensors") && e.contains("3 labels") && e.contains("4 samples"),
        "{e}"
    );

    // drop_last with too few samples: no silent empty epoch.
    let dir = id_dir("auto-bad-empty-epoch", &[(0, 3), (1, 3)]);
    let l = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(10)
        .drop_last(true)
        .build()
        .unwrap();
    let e = l.plan_epoch(1, &mut l.new_state()).unwrap_err().to_string();
    assert!(e.contains("6 samples") && e.contains("10"), "{e}");
}

// ---- MNIST from ../shared -----------------------------------------------------------------

fn mnist_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if dir.join("train-images-idx3-ubyte.gz").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "note: {} not found; skipping the MNIST check",
            dir.display()
        );
        None
    }
}

#[test]
fn mnist_loads_with_the_right_shapes_and_label_counts() {
    let Some(dir) = mnist_dir() else { return };
    let train = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(128)
        .build()
        .unwrap();
    let inf = train.inferred();
    assert_eq!((inf.format.as_str(), inf.mode), ("idx", Mode::Dataset));
    assert_eq!(inf.num_samples, 60000);
    assert_eq!(inf.sample_shape, [28, 28]);
    assert_eq!(inf.dtype, DType::U8);
    assert_eq!(
        inf.labels.class_counts.as_deref(),
        Some(&[5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949][..])
    );
    let mut state = cursor(&train);
    let names = planned(&train, &mut state);
    assert_eq!(names.len(), 469);
    let last = load_at(&train, &state, "468").unwrap();
    assert_eq!(last.x.dims(), [96, 28, 28]);
    let first = load_at(&train, &state, "0").unwrap();
    assert_eq!(
        first.y.to_vec1::<u32>().unwrap()[..8],
        [5, 0, 4, 1, 9, 2, 1, 3]
    );
    let max = first.x.max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(max, 255.0);

    let test = AutoData::from_file(dir.join("t10k-images-idx3-ubyte.gz"))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(test.inferred().num_samples, 10000);
    assert_eq!(
        test.inferred().labels.class_counts.as_deref(),
        Some(&[980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009][..])
    );
}

// ---- deeptrain data --------------------------------------------------------------------------

fn deeptrain_data(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .arg("data")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn cli_data_prints_inference_and_the_batches_of_an_epoch() {
    let sizes = [(0, 300), (1, 100), (2, 250), (10, 50), (3, 128)];
    let dir = id_dir("auto-cli", &sizes);
    let d = dir.to_str().unwrap();
    let (ok, out, err) = deeptrain_data(&[d, "--batch-size", "128", "--json"]);
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["format"], "npy");
    assert_eq!(j["num_samples"], 828);
    assert_eq!(j["labels"]["num_classes"], 5);
    let sets: Vec<&str> = j["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["set"].as_str().unwrap())
        .collect();
    assert_eq!(
        sets,
        ["0-a", "0-b", "0-c+1-a", "1-b+2-a", "2-b", "2-c+3-a", "3-b+10"]
    );
    assert_eq!(j["batches"][6]["shape"], serde_json::json!([60, 2, 3]));

    // Shuffled with a seed: the same sequence every time, as a trainer with that seed sees.
    let (_, a, _) = deeptrain_data(&[d, "--batch-size", "128", "--shuffle", "--seed", "4"]);
    let (_, b, _) = deeptrain_data(&[d, "--batch-size", "128", "--shuffle", "--seed", "4"]);
    assert_eq!(a, b);
    assert!(a.contains("set order (seed 4)"), "{a}");
    let loader = AutoData::from_dir(&dir)
        .unwrap()
        .batch_size(128)
        .shuffle(true)
        .seed(4)
        .build()
        .unwrap();
    let mut state = cursor(&loader);
    for name in planned(&loader, &mut state) {
        assert!(a.contains(&format!("\n  {name:<16}")), "{name} in {a}");
    }

    let (ok, _, err) = deeptrain_data(&[&format!("{d}/nope")]);
    assert!(!ok && err.contains("nope"), "{err}");

    if let Some(mnist) = mnist_dir() {
        let (ok, out, err) = deeptrain_data(&[mnist.to_str().unwrap(), "--batch-size", "1000"]);
        assert!(ok, "{err}");
        assert!(out.contains("60000 of shape (28, 28), dtype u8"), "{out}");
        assert!(out.contains("10 classes"), "{out}");
        assert!(out.contains("60 batches"), "{out}");
    }
}
