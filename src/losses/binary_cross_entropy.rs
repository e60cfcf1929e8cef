//! Binary cross-entropy on logits, as PyTorch's `nn.BCEWithLogitsLoss(pos_weight=)`: one
//! independent yes/no per output (binary and multi-label classification), computed in the
//! numerically stable form. candle-nn's `binary_cross_entropy_with_logit` takes the log of
//! a sigmoid, which gives `inf` for large logits and has no `pos_weight`, hence our own.

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use super::base::{batch_of, check_non_negative, reduce_elements, Loss, Targets};
use crate::error::{Error, Result};

/// Weight of the positive targets, as PyTorch's `pos_weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged, expecting = "a number or a list of one number per output")]
pub enum PosWeight {
    /// One weight for every output.
    All(f64),
    /// One weight per output (the last dimension of the model's output).
    PerOutput(Vec<f64>),
}

/// Binary cross-entropy on logits, one or more independent yes/no outputs per sample
/// (targets 0 or 1), as PyTorch's `BCEWithLogitsLoss`.
///
/// The settings of [`BinaryCrossEntropy`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BinaryCrossEntropyArgs {
    /// Factor (`>= 0`) on the loss of positive targets: above 1 favours recall (e.g.
    /// `negatives / positives` for a rare class), below 1 precision. A number for every
    /// output or a list with one per output. Default `null` (1 for all).
    pub pos_weight: Option<PosWeight>,
}

/// Binary cross-entropy of logits `x` against targets `y` in `[0, 1]` (`f32`, the output's
/// shape), per element as PyTorch's `BCEWithLogitsLoss`:
///
/// `l = (1 - y) * x + (1 + (p - 1) * y) * (log(1 + exp(-|x|)) + max(-x, 0))`
///
/// (`= -[p * y * log σ(x) + (1 - y) * log(1 - σ(x))]`, finite for any logit), with `p`
/// the positive weight of the element's output; the batch loss is the mean of every
/// element.
#[derive(Debug, Clone, Default)]
pub struct BinaryCrossEntropy {
    args: BinaryCrossEntropyArgs,
}

impl BinaryCrossEntropy {
    /// The loss for a model with `num_outputs` outputs (a per-output `pos_weight` list must
    /// have that many values).
    pub fn new(args: BinaryCrossEntropyArgs, num_outputs: usize) -> Result<Self> {
        match &args.pos_weight {
            None => {}
            Some(PosWeight::All(p)) => check_non_negative("loss.pos_weight", *p)?,
            Some(PosWeight::PerOutput(p)) => {
                if p.len() != num_outputs {
                    return Err(Error::config(
                        "loss.pos_weight",
                        format!(
                            "{} weights given for {num_outputs} outputs: give one per output, \
                             or one number for all",
                            p.len()
                        ),
                    ));
                }
                for (i, &x) in p.iter().enumerate() {
                    check_non_negative(&format!("loss.pos_weight[{i}]"), x)?;
                }
            }
        }
        Ok(Self { args })
    }

    /// The settings it was built with.
    pub fn args(&self) -> &BinaryCrossEntropyArgs {
        &self.args
    }
}

impl Loss for BinaryCrossEntropy {
    fn name(&self) -> String {
        "binary_cross_entropy".into()
    }

    fn description(&self) -> String {
        match &self.args.pos_weight {
            None => self.name(),
            Some(PosWeight::All(p)) => format!("{} (pos_weight {p})", self.name()),
            Some(PosWeight::PerOutput(p)) => format!("{} (pos_weight {p:?})", self.name()),
        }
    }

    fn forward(
        &self,
        output: &Tensor,
        target: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        let batch = batch_of("binary_cross_entropy", output)?;
        // A `[batch]` target for a `[batch, 1]` output is the same thing.
        if target.elem_count() != output.elem_count() {
            return Err(Error::Data(format!(
                "loss binary_cross_entropy: targets {:?} do not match the model output {:?} \
                 (one target in [0, 1] per output)",
                target.dims(),
                output.dims()
            )));
        }
        let x = output;
        let y = target.reshape(x.shape())?.to_dtype(x.dtype())?;
        // softplus(-x) = log(1 + exp(-x)), without overflow for large |x|. candle has no
        // log1p: for |x| > ~17 the value rounds to the f32 of `max(-x, 0)` (an absolute
        // error below 1e-7), but the gradient, `-exp(-|x|) / (1 + exp(-|x|))`, stays exact.
        let softplus_neg = x
            .neg()?
            .relu()?
            .add(&x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
        let mut per_element = y.affine(-1.0, 1.0)?.mul(x)?;
        per_element = match &self.args.pos_weight {
            None => per_element.add(&softplus_neg)?,
            Some(p) => {
                let outputs = if x.rank() < 2 { 1 } else { x.dim(D::Minus1)? };
                let p_minus_1: Vec<f64> = match p {
                    PosWeight::All(p) => vec![p - 1.0; outputs],
                    PosWeight::PerOutput(p) if p.len() == outputs => {
                        p.iter().map(|p| p - 1.0).collect()
                    }
                    PosWeight::PerOutput(p) => {
                        return Err(Error::Data(format!(
                            "loss binary_cross_entropy: {} pos_weight values for a model \
                             output of {outputs} outputs",
                            p.len()
                        )))
                    }
                };
                let p_minus_1 =
                    Tensor::from_slice(&p_minus_1, outputs, x.device())?.to_dtype(x.dtype())?;
                let p_minus_1 = if x.rank() < 2 {
                    p_minus_1.squeeze(0)?
                } else {
                    p_minus_1
                };
                let log_weight = y.broadcast_mul(&p_minus_1)?.affine(1.0, 1.0)?;
                per_element.add(&log_weight.mul(&softplus_neg)?)?
            }
        };
        reduce_elements("binary_cross_entropy", &per_element, batch, weights)
    }

    fn targets(&self) -> Targets {
        Targets::Values
    }
}

#[cfg(test)]
mod tests {
    use super::super::base::testing::*;
    use super::*;

    /// PyTorch's definition, written as the plain formula in f64.
    fn reference(x: f64, y: f64, p: f64) -> f64 {
        let s = 1.0 / (1.0 + (-x).exp());
        -(p * y * s.ln() + (1.0 - y) * (1.0 - s).ln())
    }

    const X: [&[f32]; 3] = [&[0.5, -1.0], &[2.0, 0.0], &[-3.0, 1.5]];
    const Y: [&[f32]; 3] = [&[1.0, 0.0], &[0.0, 1.0], &[0.3, 1.0]];

    fn mean_reference(p: [f64; 2], v: Option<&[f64]>) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..3 {
            let li = (0..2)
                .map(|k| reference(X[i][k] as f64, Y[i][k] as f64, p[k]))
                .sum::<f64>()
                / 2.0;
            let vi = v.map_or(1.0, |v| v[i]);
            num += vi * li;
            den += vi;
        }
        num / den
    }

    fn loss(args: BinaryCrossEntropyArgs, v: Option<&[f32]>) -> f64 {
        let bce = BinaryCrossEntropy::new(args, 2).unwrap();
        let v = v.map(vector);
        scalar(&bce.forward(&matrix(&X), &matrix(&Y), v.as_ref()).unwrap())
    }

    #[test]
    fn hand_computed_values() {
        // x = 0: σ = 1/2, loss ln 2 for y = 0 or 1; y = 1/2 too.
        let bce = BinaryCrossEntropy::default();
        let got = bce
            .forward(&matrix(&[&[0.0], &[0.0]]), &vector(&[1.0, 0.5]), None)
            .unwrap();
        assert_close(scalar(&got), std::f64::consts::LN_2);
        // x = ln 3 (σ = 3/4), y = 1: -ln(3/4); with pos_weight 2: -2 ln(3/4).
        let x = matrix(&[&[3f32.ln()]]);
        let y = matrix(&[&[1.0]]);
        assert_close(scalar(&bce.forward(&x, &y, None).unwrap()), -(0.75f64.ln()));
        let two = BinaryCrossEntropy::new(
            BinaryCrossEntropyArgs {
                pos_weight: Some(PosWeight::All(2.0)),
            },
            1,
        )
        .unwrap();
        assert_close(
            scalar(&two.forward(&x, &y, None).unwrap()),
            -2.0 * 0.75f64.ln(),
        );
    }

    #[test]
    fn matches_the_formula_with_and_without_pos_weight() {
        assert_close(
            loss(BinaryCrossEntropyArgs::default(), None),
            mean_reference([1.0, 1.0], None),
        );
        let all = BinaryCrossEntropyArgs {
            pos_weight: Some(PosWeight::All(3.0)),
        };
        assert_close(loss(all, None), mean_reference([3.0, 3.0], None));
        let per = BinaryCrossEntropyArgs {
            pos_weight: Some(PosWeight::PerOutput(vec![0.5, 4.0])),
        };
        assert_close(loss(per.clone(), None), mean_reference([0.5, 4.0], None));
        let v = [2.0f32, 0.0, 1.0];
        assert_close(
            loss(per, Some(&v)),
            mean_reference([0.5, 4.0], Some(&[2.0, 0.0, 1.0])),
        );
    }

    #[test]
    fn large_logits_stay_finite_and_exact() {
        let bce = BinaryCrossEntropy::default();
        // x = 100, y = 0: loss = 100 + log(1 + e^-100) ≈ 100; x = -100, y = 1 likewise.
        let got = bce
            .forward(&vector(&[100.0, -100.0]), &vector(&[0.0, 1.0]), None)
            .unwrap();
        assert_close(scalar(&got), 100.0);
        // Confident and right: the loss is ~e^-30 and its gradient σ(30) - 1 ≈ -e^-30.
        let x = candle_core::Var::from_tensor(&vector(&[30.0])).unwrap();
        let got = bce.forward(x.as_tensor(), &vector(&[1.0]), None).unwrap();
        assert!((scalar(&got) - (-30f64).exp()).abs() < 1e-12);
        let grads = got.backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
        let want = -(-30f64).exp() / (1.0 + (-30f64).exp());
        assert!((g - want).abs() < 1e-6 * want.abs(), "{g} vs {want}");
    }

    #[test]
    fn a_one_dimensional_output_takes_one_pos_weight() {
        let per = BinaryCrossEntropy::new(
            BinaryCrossEntropyArgs {
                pos_weight: Some(PosWeight::PerOutput(vec![2.0])),
            },
            1,
        )
        .unwrap();
        let got = per
            .forward(&vector(&[0.5, -1.0]), &vector(&[1.0, 0.0]), None)
            .unwrap();
        let want = (reference(0.5, 1.0, 2.0) + reference(-1.0, 0.0, 2.0)) / 2.0;
        assert_close(scalar(&got), want);
    }

    #[test]
    fn bad_settings_and_inputs_are_refused() {
        let new = |p: PosWeight, n: usize| {
            BinaryCrossEntropy::new(
                BinaryCrossEntropyArgs {
                    pos_weight: Some(p),
                },
                n,
            )
        };
        let e = new(PosWeight::All(-1.0), 2).unwrap_err().to_string();
        assert!(e.contains("loss.pos_weight") && e.contains("-1"), "{e}");
        let e = new(PosWeight::PerOutput(vec![1.0]), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 weights given for 2 outputs"), "{e}");
        let e = new(PosWeight::PerOutput(vec![1.0, f64::NAN]), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss.pos_weight[1]"), "{e}");
        // Built for 2 outputs, given 3.
        let bce = new(PosWeight::PerOutput(vec![1.0, 1.0]), 2).unwrap();
        let x = matrix(&[&[0.0, 0.0, 0.0]]);
        let e = bce.forward(&x, &x, None).unwrap_err().to_string();
        assert!(
            e.contains("2 pos_weight values for a model output of 3"),
            "{e}"
        );
        let e = BinaryCrossEntropy::default()
            .forward(&x, &vector(&[1.0]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not match the model output"), "{e}");
    }

    #[test]
    fn args_from_json() {
        let parse = |s: &str| serde_json::from_str::<BinaryCrossEntropyArgs>(s);
        assert_eq!(parse("{}").unwrap(), BinaryCrossEntropyArgs::default());
        assert_eq!(
            parse(r#"{"pos_weight": 2}"#).unwrap().pos_weight,
            Some(PosWeight::All(2.0))
        );
        assert_eq!(
            parse(r#"{"pos_weight": [1, 0.5]}"#).unwrap().pos_weight,
            Some(PosWeight::PerOutput(vec![1.0, 0.5]))
        );
        let e = parse(r#"{"pos_weight": "x"}"#).unwrap_err().to_string();
        assert!(e.contains("a number or a list"), "{e}");
        assert!(parse(r#"{"weight": 1}"#).is_err());
    }
}
