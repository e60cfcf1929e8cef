//! Seeded initialisation for models made of candle-nn layers.
//!
//! `candle_nn::linear`, `conv2d`, `lstm` and friends ask their `VarBuilder` for each
//! weight together with an init hint (`Init::Kaiming`, `Init::Uniform`, ...). Backed by a
//! plain `VarMap`, those draws come from candle's CPU RNG, which cannot be seeded, so two
//! processes start from different weights. [`seeded_var_builder`] answers the same hints
//! from the run's own ChaCha stream instead: the same seed gives the same weights in every
//! process, and the variables land in the model's `VarMap` under candle-nn's usual names.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};

use crate::rng::RngStream;

/// A `VarBuilder` that creates missing variables in `varmap`, drawing their initial values
/// from `rng` (typically `RngStream::new(seed, StreamId::Init)`), and returns existing
/// ones as they are. Variables are drawn in the order the model asks for them.
pub fn seeded_var_builder(
    varmap: &VarMap,
    rng: RngStream,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend = SeededBackend {
        varmap: varmap.clone(),
        rng: Arc::new(Mutex::new(rng)),
    };
    VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
}

/// Runs `build` with a [`seeded_var_builder`] drawing from `rng`, then leaves `rng` where
/// the draws left it: for constructors that take the run's stream by `&mut` (as
/// `Mlp::new` does), so that what follows draws after the model's weights.
pub fn build_seeded<T>(
    varmap: &VarMap,
    rng: &mut RngStream,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder<'static>) -> crate::error::Result<T>,
) -> crate::error::Result<T> {
    let shared = Arc::new(Mutex::new(rng.clone()));
    let backend = SeededBackend {
        varmap: varmap.clone(),
        rng: shared.clone(),
    };
    let built = build(VarBuilder::from_backend(
        Box::new(backend),
        dtype,
        device.clone(),
    ));
    *rng = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
    built
}

/// The `SimpleBackend` behind [`seeded_var_builder`].
struct SeededBackend {
    varmap: VarMap,
    rng: Arc<Mutex<RngStream>>,
}

impl SimpleBackend for SeededBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!(
                    "variable `{name}` exists with shape {:?}, asked for {:?}",
                    var.shape(),
                    shape
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let values = draw(init, &shape, &mut rng);
        let tensor = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        vars.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        match vars.get(name) {
            Some(var) => var.as_tensor().to_device(device)?.to_dtype(dtype),
            None => candle_core::bail!(
                "no variable `{name}`: a seeded builder needs a shape to create one"
            ),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        vars.contains_key(name)
    }
}

/// Values for one variable, as candle-nn's `Init::var` would draw them, from `rng`.
fn draw(init: Init, shape: &Shape, rng: &mut RngStream) -> Vec<f32> {
    let n = shape.elem_count();
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Uniform { lo, up } => (0..n).map(|_| uniform(rng, lo, up)).collect(),
        Init::Randn { mean, stdev } => (0..n).map(|_| normal(rng, mean, stdev)).collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape);
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| uniform(rng, -bound, bound)).collect()
                }
                NormalOrUniform::Normal => (0..n).map(|_| normal(rng, 0.0, std)).collect(),
            }
        }
    }
}

/// Uniform in `[lo, up)`, from 53 random bits.
fn uniform(rng: &mut RngStream, lo: f64, up: f64) -> f32 {
    (lo + (up - lo) * unit(rng)) as f32
}

/// Normal by Box-Muller, one value per pair of draws (simple and platform-independent).
fn normal(rng: &mut RngStream, mean: f64, stdev: f64) -> f32 {
    let u1 = 1.0 - unit(rng); // (0, 1]: ln is finite
    let u2 = unit(rng);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mean + stdev * z) as f32
}

/// Uniform in `[0, 1)` with 53 bits of precision.
fn unit(rng: &mut RngStream) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::StreamId;

    fn build(seed: u64) -> (VarMap, Vec<f32>) {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(
            &varmap,
            RngStream::new(seed, StreamId::Init),
            DType::F32,
            &Device::Cpu,
        );
        let lin = candle_nn::linear(16, 8, vb.pp("fc")).unwrap();
        let conv = candle_nn::conv2d(1, 4, 3, Default::default(), vb.pp("conv")).unwrap();
        let mut all = lin
            .weight()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        all.extend(
            conv.weight()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
        (varmap, all)
    }

    #[test]
    fn the_same_seed_gives_the_same_weights_and_another_seed_others() {
        let (vm, a) = build(3);
        let (_, b) = build(3);
        let (_, c) = build(4);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let names: Vec<String> = {
            let data = vm.data().lock().unwrap();
            let mut n: Vec<String> = data.keys().cloned().collect();
            n.sort();
            n
        };
        assert_eq!(names, ["conv.bias", "conv.weight", "fc.bias", "fc.weight"]);
    }

    #[test]
    fn kaiming_uniform_stays_in_its_bound_and_normal_has_its_moments() {
        let mut rng = RngStream::new(5, StreamId::Init);
        let w = draw(
            candle_nn::init::DEFAULT_KAIMING_UNIFORM,
            &Shape::from((8, 16)),
            &mut rng,
        );
        // Kaiming uniform, ReLU gain, fan_in 16: bound sqrt(3) * sqrt(2) / 4.
        let bound = (3f32).sqrt() * (2f32).sqrt() / 4.0;
        assert!(w.iter().all(|x| x.abs() <= bound));
        assert!(w.iter().any(|x| x.abs() > bound * 0.9));
        let mut rng = RngStream::new(9, StreamId::Init);
        let xs: Vec<f64> = (0..20_000)
            .map(|_| normal(&mut rng, 1.0, 2.0) as f64)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "std {}", var.sqrt());
    }

    #[test]
    fn build_seeded_draws_what_the_builder_draws_and_advances_the_stream() {
        let (_, a) = build(3);
        let varmap = VarMap::new();
        let mut rng = RngStream::new(3, StreamId::Init);
        let b = build_seeded(&varmap, &mut rng, DType::F32, &Device::Cpu, |vb| {
            let lin = candle_nn::linear(16, 8, vb.pp("fc"))?;
            let conv = candle_nn::conv2d(1, 4, 3, Default::default(), vb.pp("conv"))?;
            let mut all = lin.weight().flatten_all()?.to_vec1::<f32>()?;
            all.extend(conv.weight().flatten_all()?.to_vec1::<f32>()?);
            Ok(all)
        })
        .unwrap();
        assert_eq!(a, b);
        // The stream moved past every draw: 128 + 36 normal weights (two u64 each by
        // Box-Muller), 8 + 4 uniform biases (one each); a u64 is two ChaCha words.
        let draws = 2 * (128 + 36) + 8 + 4;
        assert_eq!(rng.state().word_pos, 2 * draws as u128);
    }

    #[test]
    fn an_existing_variable_is_returned_and_a_shape_clash_is_an_error() {
        let (vm, _) = build(1);
        let vb = seeded_var_builder(
            &vm,
            RngStream::new(1, StreamId::Init),
            DType::F32,
            &Device::Cpu,
        );
        let again = vb.pp("fc").get((8, 16), "weight").unwrap();
        let stored = vm.data().lock().unwrap()["fc.weight"].as_tensor().clone();
        assert_eq!(again.id(), stored.id());
        let e = vb.pp("fc").get((16, 8), "weight").unwrap_err().to_string();
        assert!(e.contains("fc.weight"), "{e}");
    }
}
