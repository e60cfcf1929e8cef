//! One AdamW step over an MLP 784-256-10 sized set of variables (203,530 parameters)
//! with fixed gradients: ours (fused, one pass per parameter) vs candle-nn's AdamW.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deeptrain::optim::NamedVar;
use deeptrain::{AdamConfig, AdamW, TrainOptimizer};

const SHAPES: [(&str, &[usize]); 4] = [
    ("layers.0.weight", &[256, 784]),
    ("layers.0.bias", &[256]),
    ("layers.1.weight", &[10, 256]),
    ("layers.1.bias", &[10]),
];

/// Deterministic values in [-0.5, 0.5).
fn pattern(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + salt * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// The variables, and gradients equal to fixed tensors (the loss is sum(var * c)).
fn setup() -> (Vec<NamedVar>, GradStore) {
    let dev = Device::Cpu;
    let mut vars = Vec::new();
    let mut loss = Tensor::zeros((), candle_core::DType::F32, &dev).unwrap();
    for (salt, (name, shape)) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let var =
            Var::from_tensor(&Tensor::from_vec(pattern(n, salt), *shape, &dev).unwrap()).unwrap();
        let c = Tensor::from_vec(pattern(n, salt + 10), *shape, &dev).unwrap();
        loss = (loss + var.as_tensor().mul(&c).unwrap().sum_all().unwrap()).unwrap();
        vars.push(NamedVar {
            name: name.to_string(),
            var,
        });
    }
    let grads = loss.backward().unwrap();
    (vars, grads)
}

fn adamw_step(c: &mut Criterion) {
    let params: usize = SHAPES
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let mut group = c.benchmark_group(format!("adamw_step_{params}_params"));
    group.throughput(Throughput::Elements(params as u64));

    let (vars, grads) = setup();
    let mut ours = AdamW::from_named(
        vars,
        AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::default()
        },
    );
    group.bench_function("deeptrain::AdamW", |b| {
        b.iter(|| ours.step_scaled(&grads, 1.0).unwrap())
    });

    let (vars, grads) = setup();
    let mut theirs = candle_nn::AdamW::new(
        vars.into_iter().map(|v| v.var).collect(),
        ParamsAdamW {
            weight_decay: 0.01,
            ..ParamsAdamW::default()
        },
    )
    .unwrap();
    group.bench_function("candle_nn::AdamW", |b| {
        b.iter(|| theirs.step(&grads).unwrap())
    });
    group.finish();
}

criterion_group!(benches, adamw_step);
criterion_main!(benches);
