//! Softmax cross-entropy over class logits, as PyTorch's `nn.CrossEntropyLoss(weight=,
//! label_smoothing=)`: per-class weights (a list, or scikit-learn's "balanced") and label
//! smoothing. With the default settings it is candle-nn's `cross_entropy`, op for op.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::base::{batch_of, check_non_negative, sample_weights, Loss, Targets};
use crate::error::{Error, Result};

/// Weights of the classes in the loss.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(
    untagged,
    expecting = "null, a list of one weight per class, or \"balanced\""
)]
pub enum ClassWeights {
    /// Every class weighs 1 (JSON `null`; the default).
    #[default]
    None,
    /// One weight (`>= 0`) per class, in class order.
    PerClass(Vec<f64>),
    /// `"balanced"`: class `c` weighs `n_samples / (n_classes * count_c)` over the train
    /// data's class counts, as scikit-learn's `class_weight="balanced"`.
    #[serde(
        serialize_with = "balanced::serialize",
        deserialize_with = "balanced::deserialize"
    )]
    #[schemars(schema_with = "balanced::schema")]
    Balanced,
}

/// The string `"balanced"` for [`ClassWeights::Balanced`], in and out of JSON.
mod balanced {
    use serde::{de, Deserialize, Deserializer, Serializer};

    const WORD: &str = "balanced";

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(WORD)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let s = String::deserialize(d)?;
        if s == WORD {
            Ok(())
        } else {
            Err(de::Error::invalid_value(
                de::Unexpected::Str(&s),
                &"\"balanced\"",
            ))
        }
    }

    pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "const": WORD })
    }
}

/// Cross-entropy on logits for class ids, with class weights and label smoothing, as
/// PyTorch's `CrossEntropyLoss`.
///
/// The settings of [`CrossEntropy`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CrossEntropyArgs {
    /// Share of the target probability spread evenly over all classes, in `[0, 1)`: the
    /// target becomes `(1 - s)` on the true class plus `s / n_classes` on every class.
    /// Default 0 (no smoothing).
    pub label_smoothing: f64,
    /// Per-class weights: `null` (default: all 1), a list with one weight per class, or
    /// `"balanced"` (from the train data's class counts).
    pub class_weights: ClassWeights,
}

/// Cross-entropy of class logits (`[batch, classes]`) against class ids (`u32`, `[batch]`),
/// exactly as PyTorch's `nn.CrossEntropyLoss(weight=w, label_smoothing=s)` with `'mean'`:
///
/// `loss = [(1 - s) * sum_i w[y_i] * nll_i + (s / C) * sum_i sum_c w[c] * nll_ic] / sum_i w[y_i]`
///
/// where `nll_ic = -log_softmax(x_i)[c]`, `nll_i = nll_i,y_i` and `C` the number of
/// classes: like PyTorch, the smoothing term is also divided by the sum of the *target*
/// classes' weights. Per-sample weights `v_i` multiply both sums' terms and the
/// denominator's (`sum_i v_i * w[y_i]`).
#[derive(Debug, Clone, Default)]
pub struct CrossEntropy {
    args: CrossEntropyArgs,
    /// The resolved class weights (none when every class weighs 1).
    weights: Option<Vec<f64>>,
}

impl CrossEntropy {
    /// The loss for `num_classes` classes. `class_counts` (train samples per class, in
    /// class order) is needed only for `class_weights: "balanced"`.
    pub fn new(
        args: CrossEntropyArgs,
        num_classes: usize,
        class_counts: Option<&[u64]>,
    ) -> Result<Self> {
        let s = args.label_smoothing;
        if !(0.0..1.0).contains(&s) {
            return Err(Error::config(
                "loss.label_smoothing",
                format!("{s} is not in [0, 1)"),
            ));
        }
        if num_classes == 0 {
            return Err(Error::config(
                "loss",
                "cross_entropy needs at least 1 class, got 0",
            ));
        }
        let weights = match &args.class_weights {
            ClassWeights::None => None,
            ClassWeights::PerClass(w) => {
                if w.len() != num_classes {
                    return Err(Error::config(
                        "loss.class_weights",
                        format!(
                            "{} weights given for {num_classes} classes: give one per class",
                            w.len()
                        ),
                    ));
                }
                for (c, &x) in w.iter().enumerate() {
                    check_non_negative(&format!("loss.class_weights[{c}]"), x)?;
                }
                if w.iter().all(|&x| x == 0.0) {
                    return Err(Error::config(
                        "loss.class_weights",
                        "every weight is 0: at least one class must count",
                    ));
                }
                Some(w.clone())
            }
            ClassWeights::Balanced => Some(balanced_weights(num_classes, class_counts)?),
        };
        Ok(Self { args, weights })
    }

    /// The settings it was built with.
    pub fn args(&self) -> &CrossEntropyArgs {
        &self.args
    }

    /// The weight of each class, resolved (`None` when every class weighs 1).
    pub fn class_weights(&self) -> Option<&[f64]> {
        self.weights.as_deref()
    }

    /// Everything but the defaults: weights and/or smoothing and/or sample weights.
    fn general(
        &self,
        output: &Tensor,
        target: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (batch, classes) = output.dims2()?;
        let dtype = output.dtype();
        let s = self.args.label_smoothing;
        let logp = candle_nn::ops::log_softmax(output, 1)?;
        let nll = logp.gather(&target.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
        // Per sample: the numerator's term and the denominator's (the target class weight).
        let (mut num, mut den) = match &self.weights {
            Some(w) => {
                if w.len() != classes {
                    return Err(Error::Data(format!(
                        "loss cross_entropy: {} class weights for a model output of {classes} \
                         classes",
                        w.len()
                    )));
                }
                let w = Tensor::from_slice(w, classes, output.device())?.to_dtype(dtype)?;
                let wy = w.index_select(target, 0)?;
                let mut num = wy.mul(&nll)?;
                if s > 0.0 {
                    let smooth = logp.broadcast_mul(&w.unsqueeze(0)?)?.sum(1)?.neg()?;
                    num = num
                        .affine(1.0 - s, 0.0)?
                        .add(&smooth.affine(s / classes as f64, 0.0)?)?;
                }
                (num, wy)
            }
            None => {
                let mut num = nll;
                if s > 0.0 {
                    let smooth = logp.sum(1)?.neg()?;
                    num = num
                        .affine(1.0 - s, 0.0)?
                        .add(&smooth.affine(s / classes as f64, 0.0)?)?;
                }
                (num, Tensor::ones(batch, dtype, output.device())?)
            }
        };
        if let Some(v) = sample_weights("cross_entropy", weights, batch, dtype)? {
            num = num.mul(&v)?;
            den = den.mul(&v)?;
        }
        Ok(num.sum_all()?.div(&den.sum_all()?)?)
    }
}

/// scikit-learn's "balanced" class weights: `n_samples / (n_classes * count_c)`.
fn balanced_weights(num_classes: usize, counts: Option<&[u64]>) -> Result<Vec<f64>> {
    let field = "loss.class_weights";
    let counts = counts.ok_or_else(|| {
        Error::config(
            field,
            "\"balanced\" needs the train data's class counts, and none were given",
        )
    })?;
    if counts.len() != num_classes {
        return Err(Error::config(
            field,
            format!(
                "\"balanced\": {} class counts for {num_classes} classes",
                counts.len()
            ),
        ));
    }
    if let Some(c) = counts.iter().position(|&n| n == 0) {
        return Err(Error::config(
            field,
            format!(
                "\"balanced\": class {c} has no train samples, so it has no weight: give the \
                 weights as a list"
            ),
        ));
    }
    let n: u64 = counts.iter().sum();
    Ok(counts
        .iter()
        .map(|&k| n as f64 / (num_classes as f64 * k as f64))
        .collect())
}

impl Loss for CrossEntropy {
    fn name(&self) -> String {
        "cross_entropy".into()
    }

    fn description(&self) -> String {
        let mut parts = Vec::new();
        if self.args.label_smoothing != 0.0 {
            parts.push(format!("label_smoothing {}", self.args.label_smoothing));
        }
        match &self.args.class_weights {
            ClassWeights::None => {}
            ClassWeights::PerClass(w) => parts.push(format!("class_weights {w:?}")),
            ClassWeights::Balanced => parts.push("class_weights balanced".into()),
        }
        if parts.is_empty() {
            self.name()
        } else {
            format!("{} ({})", self.name(), parts.join(", "))
        }
    }

    fn forward(
        &self,
        output: &Tensor,
        target: &Tensor,
        weights: Option<&Tensor>,
    ) -> Result<Tensor> {
        let batch = batch_of("cross_entropy", output)?;
        if output.rank() != 2 || target.dims() != [batch] || target.dtype() != DType::U32 {
            return Err(Error::Data(format!(
                "loss cross_entropy: expects logits [batch, classes] and u32 class ids \
                 [batch]; got output {:?} and {:?} targets {:?}",
                output.dims(),
                target.dtype(),
                target.dims()
            )));
        }
        if self.weights.is_none() && self.args.label_smoothing == 0.0 && weights.is_none() {
            // The default: candle-nn's own, so a default job's bits never change.
            return Ok(candle_nn::loss::cross_entropy(output, target)?);
        }
        self.general(output, target, weights)
    }

    fn targets(&self) -> Targets {
        Targets::ClassIds
    }
}

#[cfg(test)]
mod tests {
    use super::super::base::testing::*;
    use super::*;

    /// PyTorch's formula, written out in f64 loops (LossNLL.cpp,
    /// `cross_entropy_loss_label_smoothing` and `nll_loss`, reduction 'mean'), with
    /// per-sample weights `v` multiplying each sample's terms.
    fn reference(x: &[&[f32]], y: &[u32], w: Option<&[f64]>, s: f64, v: Option<&[f64]>) -> f64 {
        let c = x[0].len();
        let (mut nll, mut smooth, mut den) = (0.0, 0.0, 0.0);
        for (i, row) in x.iter().enumerate() {
            let m = row.iter().fold(f64::MIN, |a, &b| a.max(b as f64));
            let lse = m + row.iter().map(|&b| (b as f64 - m).exp()).sum::<f64>().ln();
            let logp: Vec<f64> = row.iter().map(|&b| b as f64 - lse).collect();
            let wc = |k: usize| w.map_or(1.0, |w| w[k]);
            let vi = v.map_or(1.0, |v| v[i]);
            let yi = y[i] as usize;
            nll += vi * wc(yi) * -logp[yi];
            smooth += vi * (0..c).map(|k| wc(k) * -logp[k]).sum::<f64>();
            den += vi * wc(yi);
        }
        (1.0 - s) * nll / den + s / c as f64 * smooth / den
    }

    const X: [&[f32]; 4] = [
        &[2.0, 0.5, -1.0],
        &[0.1, 0.2, 0.3],
        &[-1.5, 3.0, 0.0],
        &[0.0, 0.0, 4.0],
    ];
    const Y: [u32; 4] = [0, 2, 1, 0];

    fn loss(args: CrossEntropyArgs, counts: Option<&[u64]>, v: Option<&[f32]>) -> f64 {
        let ce = CrossEntropy::new(args, 3, counts).unwrap();
        let v = v.map(vector);
        scalar(&ce.forward(&matrix(&X), &ids(&Y), v.as_ref()).unwrap())
    }

    #[test]
    fn default_is_candle_nn_cross_entropy_bit_for_bit() {
        let (x, y) = (matrix(&X), ids(&Y));
        let ours = CrossEntropy::default().forward(&x, &y, None).unwrap();
        let candle = candle_nn::loss::cross_entropy(&x, &y).unwrap();
        assert_eq!(
            ours.to_scalar::<f32>().unwrap().to_bits(),
            candle.to_scalar::<f32>().unwrap().to_bits()
        );
        assert_close(scalar(&ours), reference(&X, &Y, None, 0.0, None));
    }

    #[test]
    fn hand_computed_two_class_values() {
        // logits [0, 0] → p = 1/2 each: loss ln 2 whatever the target.
        let ce = CrossEntropy::default();
        let x = matrix(&[&[0.0, 0.0]]);
        let got = scalar(&ce.forward(&x, &ids(&[1]), None).unwrap());
        assert_close(got, std::f64::consts::LN_2);
        // Smoothing 0.2 on logits [ln 3, 0] (p = 3/4, 1/4), target 0:
        // 0.8 * -ln(3/4) + 0.1 * (-ln(3/4) - ln(1/4))
        let x = matrix(&[&[3f32.ln(), 0.0]]);
        let smooth = CrossEntropyArgs {
            label_smoothing: 0.2,
            ..Default::default()
        };
        let ce = CrossEntropy::new(smooth, 2, None).unwrap();
        let got = scalar(&ce.forward(&x, &ids(&[0]), None).unwrap());
        let want = 0.8 * -(0.75f64.ln()) + 0.1 * (-(0.75f64.ln()) - 0.25f64.ln());
        assert_close(got, want);
    }

    #[test]
    fn class_weights_normalise_by_the_target_classes_weight_sum() {
        let w = vec![1.0, 2.0, 0.5];
        let args = CrossEntropyArgs {
            class_weights: ClassWeights::PerClass(w.clone()),
            ..Default::default()
        };
        let got = loss(args, None, None);
        assert_close(got, reference(&X, &Y, Some(&w), 0.0, None));
        // By hand: sum_i w[y_i] nll_i / (1 + 0.5 + 2 + 1).
        let nll = |row: &[f32], k: usize| {
            let lse = row.iter().map(|&b| (b as f64).exp()).sum::<f64>().ln();
            lse - row[k] as f64
        };
        let by_hand = (nll(X[0], 0) + 0.5 * nll(X[1], 2) + 2.0 * nll(X[2], 1) + nll(X[3], 0)) / 4.5;
        assert_close(got, by_hand);
    }

    #[test]
    fn smoothing_with_and_without_weights() {
        for s in [0.1, 0.5, 0.9] {
            let args = CrossEntropyArgs {
                label_smoothing: s,
                ..Default::default()
            };
            assert_close(loss(args, None, None), reference(&X, &Y, None, s, None));
            let w = vec![0.2, 1.0, 3.0];
            let args = CrossEntropyArgs {
                label_smoothing: s,
                class_weights: ClassWeights::PerClass(w.clone()),
            };
            assert_close(loss(args, None, None), reference(&X, &Y, Some(&w), s, None));
        }
    }

    #[test]
    fn balanced_weights_follow_scikit_learn() {
        let counts = [6, 3, 1];
        let ce = CrossEntropy::new(
            CrossEntropyArgs {
                class_weights: ClassWeights::Balanced,
                ..Default::default()
            },
            3,
            Some(&counts),
        )
        .unwrap();
        // 10 / (3 * count)
        let want = [10.0 / 18.0, 10.0 / 9.0, 10.0 / 3.0];
        assert_eq!(ce.class_weights().unwrap(), &want);
        let args = CrossEntropyArgs {
            label_smoothing: 0.1,
            class_weights: ClassWeights::Balanced,
        };
        let got = loss(args, Some(&counts), None);
        assert_close(got, reference(&X, &Y, Some(&want), 0.1, None));
    }

    #[test]
    fn sample_weights_weigh_each_sample() {
        let v = [1.0f32, 0.0, 2.0, 0.5];
        let v64: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        let got = loss(CrossEntropyArgs::default(), None, Some(&v));
        assert_close(got, reference(&X, &Y, None, 0.0, Some(&v64)));
        // Unit weights are the plain mean.
        let ones = loss(CrossEntropyArgs::default(), None, Some(&[1.0; 4]));
        assert_close(ones, loss(CrossEntropyArgs::default(), None, None));
        let w = vec![1.0, 2.0, 0.5];
        let args = CrossEntropyArgs {
            label_smoothing: 0.3,
            class_weights: ClassWeights::PerClass(w.clone()),
        };
        let got = loss(args, None, Some(&v));
        assert_close(got, reference(&X, &Y, Some(&w), 0.3, Some(&v64)));
    }

    #[test]
    fn weighted_loss_has_gradients() {
        let x = candle_core::Var::from_tensor(&matrix(&X)).unwrap();
        let args = CrossEntropyArgs {
            label_smoothing: 0.1,
            class_weights: ClassWeights::PerClass(vec![1.0, 2.0, 0.5]),
        };
        let ce = CrossEntropy::new(args, 3, None).unwrap();
        let grads = ce
            .forward(x.as_tensor(), &ids(&Y), None)
            .unwrap()
            .backward()
            .unwrap();
        let g = grads.get(x.as_tensor()).unwrap().sum_all().unwrap();
        // Softmax gradients sum to 0 per row whatever the weights.
        assert!(g.to_scalar::<f32>().unwrap().abs() < 1e-5);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let err = |args: CrossEntropyArgs, counts: Option<&[u64]>| {
            CrossEntropy::new(args, 3, counts).unwrap_err().to_string()
        };
        for s in [-0.1, 1.0, f64::NAN] {
            let e = err(
                CrossEntropyArgs {
                    label_smoothing: s,
                    ..Default::default()
                },
                None,
            );
            assert!(e.contains("loss.label_smoothing"), "{e}");
        }
        let per_class = |w: Vec<f64>| CrossEntropyArgs {
            class_weights: ClassWeights::PerClass(w),
            ..Default::default()
        };
        let e = err(per_class(vec![1.0, 2.0]), None);
        assert!(e.contains("2 weights given for 3 classes"), "{e}");
        let e = err(per_class(vec![1.0, -2.0, 1.0]), None);
        assert!(
            e.contains("loss.class_weights[1]") && e.contains("-2"),
            "{e}"
        );
        let e = err(per_class(vec![0.0, 0.0, 0.0]), None);
        assert!(e.contains("every weight is 0"), "{e}");
        let balanced = CrossEntropyArgs {
            class_weights: ClassWeights::Balanced,
            ..Default::default()
        };
        let e = err(balanced.clone(), None);
        assert!(e.contains("needs the train data's class counts"), "{e}");
        let e = err(balanced.clone(), Some(&[1, 2]));
        assert!(e.contains("2 class counts for 3 classes"), "{e}");
        let e = err(balanced, Some(&[1, 0, 2]));
        assert!(e.contains("class 1 has no train samples"), "{e}");
        let e = CrossEntropy::new(CrossEntropyArgs::default(), 0, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 1 class"), "{e}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let ce = CrossEntropy::default();
        let x = matrix(&X);
        let e = ce
            .forward(&x, &vector(&[0.0, 1.0, 2.0, 0.0]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("u32 class ids") && e.contains("F32"), "{e}");
        assert!(ce.forward(&x, &ids(&[0, 1]), None).is_err());
        let w = CrossEntropy::new(
            CrossEntropyArgs {
                class_weights: ClassWeights::PerClass(vec![1.0, 1.0, 1.0]),
                ..Default::default()
            },
            3,
            None,
        )
        .unwrap();
        let e = w
            .forward(&matrix(&[&[0.0, 1.0]]), &ids(&[0]), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 class weights for a model output of 2 classes"),
            "{e}"
        );
    }

    #[test]
    fn args_from_json() {
        let parse = |s: &str| serde_json::from_str::<CrossEntropyArgs>(s);
        assert_eq!(parse("{}").unwrap(), CrossEntropyArgs::default());
        let a = parse(r#"{"label_smoothing": 0.1, "class_weights": "balanced"}"#).unwrap();
        assert_eq!(a.class_weights, ClassWeights::Balanced);
        assert_eq!(a.label_smoothing, 0.1);
        let a = parse(r#"{"class_weights": [1, 2.5]}"#).unwrap();
        assert_eq!(a.class_weights, ClassWeights::PerClass(vec![1.0, 2.5]));
        assert_eq!(
            parse(r#"{"class_weights": null}"#).unwrap().class_weights,
            ClassWeights::None
        );
        let e = parse(r#"{"class_weights": "balance"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a list of one weight per class"), "{e}");
        let e = parse(r#"{"smoothing": 0.1}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `smoothing`"), "{e}");
        for a in [
            CrossEntropyArgs::default(),
            parse(r#"{"class_weights": "balanced"}"#).unwrap(),
            parse(r#"{"class_weights": [1, 2]}"#).unwrap(),
        ] {
            let back = parse(&serde_json::to_string(&a).unwrap()).unwrap();
            assert_eq!(back, a);
        }
        assert_eq!(
            serde_json::to_value(parse(r#"{"class_weights": "balanced"}"#).unwrap()).unwrap()
                ["class_weights"],
            "balanced"
        );
        let schema = serde_json::to_string(&schemars::schema_for!(CrossEntropyArgs)).unwrap();
        assert!(schema.contains("label_smoothing") && schema.contains("balanced"));
    }

    #[test]
    fn description_names_the_non_default_settings() {
        assert_eq!(CrossEntropy::default().description(), "cross_entropy");
        let ce = CrossEntropy::new(
            CrossEntropyArgs {
                label_smoothing: 0.1,
                class_weights: ClassWeights::Balanced,
            },
            2,
            Some(&[1, 1]),
        )
        .unwrap();
        assert_eq!(
            ce.description(),
            "cross_entropy (label_smoothing 0.1, class_weights balanced)"
        );
    }
}
