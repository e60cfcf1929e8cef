//! The MNIST CNN's conv blocks (`examples/configs/mnist_cnn.json`: batch 128, 3x3 "same"
//! convolutions of 1->16 channels on 28x28 and 16->32 on 14x14, each followed by ReLU and
//! 2x2 max pooling), forward and backward: ours (`deeptrain::model::conv`: the fused op, and
//! the convolution then the pooling op) vs candle's `conv2d`, `relu` and `max_pool2d`. The first block's input is the data (no gradient), the
//! second's is tracked, as in training.
//!
//! `cargo bench --bench conv` (`RAYON_NUM_THREADS=N` for N threads).

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deeptrain::model::conv::{conv2d, conv2d_relu_max_pool2x2, relu_max_pool2x2};

const BATCH: usize = 128;

/// Deterministic values in [-0.5, 0.5).
fn pattern(shape: &[usize], salt: usize) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 + salt * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// One conv block: `(in channels, out channels, side)`.
type Block = (usize, usize, usize);

/// Input, kernel, bias and a probe to contract the pooled output with.
fn setup((c, o, side): Block, tracked: bool) -> (Tensor, Var, Var, Tensor) {
    let x = pattern(&[BATCH, c, side, side], 1);
    let x = if tracked {
        Var::from_tensor(&x).unwrap().as_tensor().clone()
    } else {
        x
    };
    let w = Var::from_tensor(&(pattern(&[o, c, 3, 3], 2) * 0.3).unwrap()).unwrap();
    let b = Var::from_tensor(&pattern(&[o], 3)).unwrap();
    let probe = pattern(&[BATCH, o, side / 2, side / 2], 4);
    (x, w, b, probe)
}

/// The fused op (the CNN's blocks without batch norm).
fn fused(x: &Tensor, w: &Var, b: &Var) -> Tensor {
    conv2d_relu_max_pool2x2(x, w, Some(b), 1, 1, 1).unwrap()
}

/// The convolution, then ReLU and pooling (with batch norm, which goes between them).
fn unfused(x: &Tensor, w: &Var, b: &Var) -> Tensor {
    relu_max_pool2x2(&conv2d(x, w, Some(b), 1, 1, 1).unwrap()).unwrap()
}

fn candle(x: &Tensor, w: &Var, b: &Var) -> Tensor {
    let o = b.dims1().unwrap();
    x.conv2d(w, 1, 1, 1, 1)
        .unwrap()
        .broadcast_add(&b.reshape((1, o, 1, 1)).unwrap())
        .unwrap()
        .relu()
        .unwrap()
        .max_pool2d(2)
        .unwrap()
}

/// A loss whose gradient with respect to `y` is `probe` (the op's backward hands it back):
/// the benchmark times the blocks, not a loss.
fn contract(y: &Tensor, probe: &Tensor) -> Tensor {
    y.apply_op1(Probe(probe.clone())).unwrap()
}

/// The op of [`contract`]: forward a scalar zero, backward the probe.
struct Probe(Tensor);

impl CustomOp1 for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok((CpuStorage::F32(vec![0.0]), Shape::from(())))
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, _: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.0.clone()))
    }
}

fn conv_blocks(c: &mut Criterion) {
    // The `deeptrain` binary's malloc settings, so that allocations cost what they cost
    // in training.
    deeptrain::cli::tune_allocator();
    for (i, block) in [(1, 16, 28), (16, 32, 14)].into_iter().enumerate() {
        let tracked = i > 0;
        let (x, w, b, probe) = setup(block, tracked);
        let mut group = c.benchmark_group(format!(
            "conv_block_{}x{}to{}_{}px",
            BATCH, block.0, block.1, block.2
        ));
        group.throughput(Throughput::Elements(BATCH as u64));
        group.sample_size(20);
        type Run = fn(&Tensor, &Var, &Var) -> Tensor;
        let runs = [
            ("deeptrain-fused", fused as Run),
            ("deeptrain-unfused", unfused as Run),
            ("candle", candle as Run),
        ];
        for (name, f) in runs {
            group.bench_function(format!("{name}/forward"), |bench| {
                bench.iter(|| f(&x, &w, &b))
            });
            group.bench_function(format!("{name}/forward+backward"), |bench| {
                bench.iter(|| contract(&f(&x, &w, &b), &probe).backward().unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, conv_blocks);
criterion_main!(benches);
