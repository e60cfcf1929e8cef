//! The regression losses, each a function of the error `d = output - target` per
//! predicted value, averaged over the batch: [`Mse`] (`nn.MSELoss`), [`Mae`] (`nn.L1Loss`)
//! and [`Huber`] (`nn.HuberLoss`). One file because they differ only in that function.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::base::{batch_of, reduce_elements, Loss, Targets};
use crate::error::{Error, Result};

/// Mean squared error, as PyTorch's `MSELoss`.
///
/// The settings of [`Mse`]: none (an empty object, so that a misspelt setting is an error).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MseArgs {}

/// Mean absolute error, as PyTorch's `L1Loss`.
///
/// The settings of [`Mae`]: none (an empty object, so that a misspelt setting is an error).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MaeArgs {}

/// Huber loss: squared for small errors, linear for large ones, as PyTorch's `HuberLoss`.
///
/// The settings of [`Huber`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HuberArgs {
    /// Where the loss turns from squared to linear: `0.5 * d^2` for `|d| < delta`, else
    /// `delta * (|d| - 0.5 * delta)`; positive. Default 1.0.
    pub delta: f64,
}

impl Default for HuberArgs {
    fn default() -> Self {
        Self { delta: 1.0 }
    }
}

/// Output and target flattened, the target in the output's dtype, after checking that
/// there are as many targets as predicted values (a `[batch]` target fits a `[batch, 1]`
/// output).
fn flat_pair(loss: &str, output: &Tensor, target: &Tensor) -> Result<(Tensor, Tensor)> {
    if output.elem_count() != target.elem_count() {
        return Err(Error::Data(format!(
            "loss {loss}: targets {:?} do not match the model output {:?} (one target per \
             predicted value)",
            target.dims(),
            output.dims()
        )));
    }
    let out = output.flatten_all()?;
    let t = target.flatten_all()?.to_dtype(out.dtype())?;
    Ok((out, t))
}

/// Mean squared error over every predicted value, as PyTorch's `nn.MSELoss`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mse;

impl Mse {
    /// The loss (it has no settings).
    pub fn new(_args: MseArgs) -> Self {
        Self
    }
}

impl Loss for Mse {
    fn name(&self) -> String {
        "mse".into()
    }

    fn forward(
        &self,
        output: &Tensor,
        target: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (out, t) = flat_pair("mse", output, target)?;
        let sq = out.sub(&t)?.sqr()?;
        match weights {
            // The ops the trainer always used for regression, so old runs keep their bits.
            None => Ok(sq.mean_all()?),
            Some(_) => reduce_elements("mse", &sq, batch_of("mse", output)?, weights),
        }
    }

    fn targets(&self) -> Targets {
        Targets::Values
    }
}

/// Mean absolute error over every predicted value, as PyTorch's `nn.L1Loss`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mae;

impl Mae {
    /// The loss (it has no settings).
    pub fn new(_args: MaeArgs) -> Self {
        Self
    }
}

impl Loss for Mae {
    fn name(&self) -> String {
        "mae".into()
    }

    fn forward(
        &self,
        output: &Tensor,
        target: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (out, t) = flat_pair("mae", output, target)?;
        let abs = out.sub(&t)?.abs()?;
        reduce_elements("mae", &abs, batch_of("mae", output)?, weights)
    }

    fn targets(&self) -> Targets {
        Targets::Values
    }
}

/// Huber loss over every predicted value, as PyTorch's `nn.HuberLoss(delta=)`: squared for
/// small errors, linear (robust to outliers) for large ones.
#[derive(Debug, Clone, Default)]
pub struct Huber {
    args: HuberArgs,
}

impl Huber {
    /// The loss; `delta` must be a finite number above 0.
    pub fn new(args: HuberArgs) -> Result<Self> {
        if !(args.delta.is_finite() && args.delta > 0.0) {
            return Err(Error::config(
                "loss.delta",
                format!("{} is not a finite number > 0", args.delta),
            ));
        }
        Ok(Self { args })
    }

    /// The settings it was built with.
    pub fn args(&self) -> &HuberArgs {
        &self.args
    }
}

impl Loss for Huber {
    fn name(&self) -> String {
        "huber".into()
    }

    fn description(&self) -> String {
        if self.args == HuberArgs::default() {
            self.name()
        } else {
            format!("{} (delta {})", self.name(), self.args.delta)
        }
    }

    fn forward(
        &self,
        output: &Tensor,
        target: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        let delta = self.args.delta;
        let (out, t) = flat_pair("huber", output, target)?;
        let d = out.sub(&t)?;
        let abs = d.abs()?;
        let squared = d.sqr()?.affine(0.5, 0.0)?;
        let linear = abs.affine(delta, -0.5 * delta * delta)?;
        let per_element = abs.lt(delta)?.where_cond(&squared, &linear)?;
        reduce_elements("huber", &per_element, batch_of("huber", output)?, weights)
    }

    fn targets(&self) -> Targets {
        Targets::Values
    }
}

#[cfg(test)]
mod tests {
    use super::super::base::testing::*;
    use super::*;

    // Two samples of two values each; errors d = output - target = [0.5, -2], [3, -0.25].
    const OUT: [&[f32]; 2] = [&[1.0, 0.0], &[4.0, 1.0]];
    const TGT: [&[f32]; 2] = [&[0.5, 2.0], &[1.0, 1.25]];

    fn run(loss: &dyn Loss, v: Option<&[f32]>) -> f64 {
        let v = v.map(vector);
        scalar(
            &loss
                .forward(&matrix(&OUT), &matrix(&TGT), v.as_ref())
                .unwrap(),
        )
    }

    #[test]
    fn mse_by_hand_and_as_the_trainer_always_computed_it() {
        // (0.25 + 4 + 9 + 0.0625) / 4
        assert_close(run(&Mse, None), 13.3125 / 4.0);
        // Sample means 2.125 and 4.53125, weights 1 and 3.
        assert_close(run(&Mse, Some(&[1.0, 3.0])), (2.125 + 3.0 * 4.53125) / 4.0);
        // Bit for bit the formula of the former `Task::loss` (a [batch] target for a
        // [batch, 1] output).
        let out = matrix(&[&[0.3], &[-1.7], &[2.9]]);
        let tgt = vector(&[0.1, 0.2, 3.3]);
        let old = out
            .flatten_all()
            .unwrap()
            .sub(&tgt.flatten_all().unwrap())
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let ours = Mse.forward(&out, &tgt, None).unwrap();
        assert_eq!(
            ours.to_scalar::<f32>().unwrap().to_bits(),
            old.to_scalar::<f32>().unwrap().to_bits()
        );
    }

    #[test]
    fn mae_by_hand() {
        // (0.5 + 2 + 3 + 0.25) / 4
        assert_close(run(&Mae, None), 5.75 / 4.0);
        // Sample means 1.25 and 1.625; only the second counts.
        assert_close(run(&Mae, Some(&[0.0, 2.0])), 1.625);
    }

    #[test]
    fn huber_by_hand() {
        // delta 1: 0.5*0.25 = 0.125; 1*(2 - 0.5) = 1.5; 1*(3 - 0.5) = 2.5; 0.5*0.0625 = 0.03125
        let h = Huber::default();
        assert_close(run(&h, None), (0.125 + 1.5 + 2.5 + 0.03125) / 4.0);
        assert_close(
            run(&h, Some(&[1.0, 1.0])),
            (0.125 + 1.5 + 2.5 + 0.03125) / 4.0,
        );
        // delta 2.5: 0.125; 0.5*4 = 2; 2.5*(3 - 1.25) = 4.375; 0.03125
        let h = Huber::new(HuberArgs { delta: 2.5 }).unwrap();
        assert_close(run(&h, None), (0.125 + 2.0 + 4.375 + 0.03125) / 4.0);
        // Sample means 1.0625 and 2.203125, weights 3 and 1.
        assert_close(run(&h, Some(&[3.0, 1.0])), (3.0 * 1.0625 + 2.203125) / 4.0);
        // A huge delta is MSE / 2.
        let h = Huber::new(HuberArgs { delta: 1e6 }).unwrap();
        assert_close(run(&h, None), run(&Mse, None) / 2.0);
    }

    #[test]
    fn huber_gradient_is_clipped_at_delta() {
        let x = candle_core::Var::from_tensor(&vector(&[0.5, 3.0, -3.0])).unwrap();
        let loss = Huber::default()
            .forward(x.as_tensor(), &vector(&[0.0, 0.0, 0.0]), None)
            .unwrap();
        let g = loss.backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        // d/dx of the mean: d / 3 inside delta, ±delta / 3 outside.
        for (g, want) in g.iter().zip([0.5 / 3.0, 1.0 / 3.0, -1.0 / 3.0]) {
            assert_close(*g as f64, want);
        }
    }

    #[test]
    fn bad_settings_and_inputs_are_refused() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Huber::new(HuberArgs { delta: bad })
                .unwrap_err()
                .to_string();
            assert!(e.contains("loss.delta"), "{e}");
        }
        for loss in [&Mse as &dyn Loss, &Mae, &Huber::default()] {
            let e = loss
                .forward(&matrix(&OUT), &vector(&[1.0, 2.0]), None)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("loss {}", loss.name())) && e.contains("do not match"),
                "{e}"
            );
            let e = loss
                .forward(&matrix(&OUT), &matrix(&TGT), Some(&vector(&[1.0])))
                .unwrap_err()
                .to_string();
            assert!(e.contains("sample weights"), "{e}");
        }
    }

    #[test]
    fn args_from_json() {
        assert_eq!(
            serde_json::from_str::<HuberArgs>("{}").unwrap(),
            HuberArgs { delta: 1.0 }
        );
        assert_eq!(
            serde_json::from_str::<HuberArgs>(r#"{"delta": 0.5}"#).unwrap(),
            HuberArgs { delta: 0.5 }
        );
        assert!(serde_json::from_str::<MseArgs>(r#"{"delta": 0.5}"#).is_err());
        assert!(serde_json::from_str::<MaeArgs>(r#"{"x": 1}"#).is_err());
        assert_eq!(serde_json::from_str::<MseArgs>("{}").unwrap(), MseArgs {});
        assert_eq!(
            Huber::new(HuberArgs { delta: 2.0 }).unwrap().description(),
            "huber (delta 2)"
        );
        assert_eq!(Huber::default().description(), "huber");
    }
}
