//! Helpers for the optimizers' unit tests: one named variable, the gradients of a
//! function of it, and comparisons with values computed by hand.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};

use super::NamedVar;

/// A 1-D variable named `w` holding `values`.
pub fn one_var(values: &[f32]) -> (Var, NamedVar) {
    let var = Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap();
    let named = NamedVar {
        name: "w".into(),
        var: var.clone(),
    };
    (var, named)
}

/// The gradients of `sum(grad(v) * stop_gradient(v))`, i.e. `grad(v)` itself for `v`.
pub fn grads_of(v: &Var, grad: impl Fn(&Tensor) -> Tensor) -> GradStore {
    let g = grad(&v.as_tensor().detach());
    (v.as_tensor() * &g)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
}

/// The variable's values.
pub fn values(v: &Var) -> Vec<f32> {
    v.as_tensor().to_vec1().unwrap()
}

/// Each of `ours` within 1e-6 (relative, or absolute near 0) of `theirs`.
pub fn assert_close(ours: &[f32], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(theirs) {
        assert!(
            (*a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0),
            "ours {ours:?} vs {theirs:?}"
        );
    }
}
