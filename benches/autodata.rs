//! AutoData loading throughput against a plain memcpy of the same bytes.
//!
//! Generates a multi-GB set of .npy files in the temp dir (`DEEPTRAIN_BENCH_GB`, default
//! 2), then times one epoch of batches: sequential, with a shuffled set order, and with
//! samples shuffled within files (gathered sample by sample), against copying the same
//! batches' bytes out of the same memory maps with `copy_from_slice`. The files are read
//! once before timing, so all numbers are page-cache-warm (memory bandwidth, not disk).
//! Prints criterion's report and a summary with GB/s, batches/s and the ratio to memcpy;
//! the files are deleted afterwards.
//!
//! ```text
//! cargo bench --bench autodata
//! DEEPTRAIN_BENCH_GB=0.5 cargo bench --bench autodata -- --quick
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::Device;
use criterion::{Criterion, Throughput};
use deeptrain::data_loaders::array::DType;
use deeptrain::data_loaders::auto::InputDType;
use deeptrain::data_loaders::npy::{read_npy, write_npy};
use deeptrain::data_loaders::{AutoData, DataLoader, LoaderState, SetRef};

/// A loader's state with the sets of the epoch it planned.
struct Planned {
    state: LoaderState,
    sets: Vec<String>,
}

/// 12 KiB samples (3 x 32 x 32 f32, an image's worth).
const SAMPLE: [usize; 3] = [3, 32, 32];
const SAMPLES_PER_FILE: usize = 10_000;
const BATCH: usize = 256;

struct Data {
    dir: PathBuf,
    files: usize,
    bytes: u64,
}

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn generate() -> Data {
    let gb: f64 = std::env::var("DEEPTRAIN_BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let sample_len: usize = SAMPLE.iter().product();
    let file_bytes = SAMPLES_PER_FILE * sample_len * 4;
    let files = ((gb * 1e9) / file_bytes as f64).ceil().max(1.0) as usize;
    let dir = std::env::temp_dir().join(format!("deeptrain-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; file_bytes];
    for f in 0..files {
        for (i, c) in buf.chunks_exact_mut(4).enumerate() {
            c.copy_from_slice(&((f * 31 + i) as f32).to_le_bytes());
        }
        let mut shape = vec![SAMPLES_PER_FILE];
        shape.extend_from_slice(&SAMPLE);
        write_npy(dir.join(format!("batch_{f}.npy")), DType::F32, &shape, &buf).unwrap();
    }
    let bytes = (files * file_bytes) as u64;
    eprintln!(
        "generated {files} files, {:.2} GB, in {:.1} s at {}",
        bytes as f64 / 1e9,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Data { dir, files, bytes }
}

fn loader(dir: &Path, shuffle: bool, samples: bool) -> (AutoData, Planned) {
    let l = AutoData::from_dir(dir)
        .unwrap()
        .no_labels()
        .input_dtype(InputDType::F32)
        .batch_size(BATCH)
        .shuffle(shuffle)
        .shuffle_samples(samples)
        .seed(1)
        .build()
        .unwrap();
    let mut s = l.new_state();
    let sets = l.plan_epoch(1, &mut s).unwrap();
    (l, Planned { state: s, sets })
}

/// One epoch through the loader: every batch becomes a tensor.
fn epoch(l: &AutoData, s: &Planned) -> usize {
    let mut n = 0;
    for name in &s.sets {
        let b = l.load(&s.state, SetRef::new(name), &Device::Cpu).unwrap();
        n += black_box(b).size();
    }
    n
}

/// The same batches' bytes copied out of the maps: into a fresh buffer per batch (what
/// a new tensor costs) or into one reused buffer (pure memcpy bandwidth).
fn memcpy_epoch(l: &AutoData, s: &Planned, reuse: &mut Option<Vec<u8>>) -> usize {
    let mut n = 0;
    for name in &s.sets {
        let view = l.view(&s.state, name).unwrap();
        let chunks = view.chunks();
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        match reuse {
            Some(buf) => {
                let mut at = 0;
                for c in &chunks {
                    buf[at..at + c.len()].copy_from_slice(c);
                    at += c.len();
                }
                black_box(&buf[..total]);
            }
            None => {
                let mut out: Vec<u8> = Vec::with_capacity(total);
                for c in &chunks {
                    out.extend_from_slice(c);
                }
                black_box(out);
            }
        }
        n += view.len();
    }
    n
}

fn median_secs(mut f: impl FnMut(), runs: usize) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[runs / 2]
}

fn main() {
    let data = generate();
    // Warm the page cache (and check the files read back).
    for f in 0..data.files {
        let a = read_npy(data.dir.join(format!("batch_{f}.npy"))).unwrap();
        black_box(a.raw().iter().step_by(4096).map(|&b| b as u64).sum::<u64>());
    }
    let (seq, seq_state) = loader(&data.dir, false, false);
    let (shuf, shuf_state) = loader(&data.dir, true, false);
    let (samp, samp_state) = loader(&data.dir, true, true);
    let batches = seq_state.sets.len();
    eprintln!(
        "{batches} batches of {BATCH} samples ({:.1} MiB) per epoch",
        (BATCH * SAMPLE.iter().product::<usize>() * 4) as f64 / (1 << 20) as f64
    );

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("autodata_epoch");
        g.throughput(Throughput::Bytes(data.bytes));
        let mut reuse = Some(vec![0u8; BATCH * SAMPLE.iter().product::<usize>() * 4]);
        g.bench_function("memcpy_reused_buffer", |b| {
            b.iter(|| memcpy_epoch(&seq, &seq_state, &mut reuse))
        });
        g.bench_function("memcpy_fresh_buffer", |b| {
            b.iter(|| memcpy_epoch(&seq, &seq_state, &mut None))
        });
        g.bench_function("autodata_sequential", |b| {
            b.iter(|| epoch(&seq, &seq_state))
        });
        g.bench_function("autodata_shuffled_sets", |b| {
            b.iter(|| epoch(&shuf, &shuf_state))
        });
        g.bench_function("autodata_shuffled_samples", |b| {
            b.iter(|| epoch(&samp, &samp_state))
        });
        g.finish();
    }
    c.final_summary();

    // A plain summary with the ratios (median of 5 epochs each).
    let gb = data.bytes as f64 / 1e9;
    let mut reuse = Some(vec![0u8; BATCH * SAMPLE.iter().product::<usize>() * 4]);
    let rows: Vec<(&str, f64)> = vec![
        (
            "memcpy, reused buffer",
            median_secs(
                || {
                    black_box(memcpy_epoch(&seq, &seq_state, &mut reuse));
                },
                5,
            ),
        ),
        (
            "memcpy, fresh buffer per batch",
            median_secs(
                || {
                    black_box(memcpy_epoch(&seq, &seq_state, &mut None));
                },
                5,
            ),
        ),
        (
            "AutoData sequential",
            median_secs(
                || {
                    black_box(epoch(&seq, &seq_state));
                },
                5,
            ),
        ),
        (
            "AutoData shuffled set order",
            median_secs(
                || {
                    black_box(epoch(&shuf, &shuf_state));
                },
                5,
            ),
        ),
        (
            "AutoData shuffled samples (gather)",
            median_secs(
                || {
                    black_box(epoch(&samp, &samp_state));
                },
                5,
            ),
        ),
    ];
    let base = rows[1].1;
    println!(
        "\n{:.2} GB per epoch, {batches} batches of {BATCH}; ratio = memcpy (fresh buffer) time / this time",
        gb
    );
    println!(
        "{:<36} {:>9} {:>11} {:>7}",
        "", "GB/s", "batches/s", "ratio"
    );
    for (name, secs) in rows {
        println!(
            "{name:<36} {:>9.2} {:>11.1} {:>7.2}",
            gb / secs,
            batches as f64 / secs,
            base / secs
        );
    }
}
