//! Your own components, named in a JSON job like the built-in ones, trained by your own
//! `deeptrain`-style command line.
//!
//! ```sh
//! cargo run --release --example custom_components -- list models
//! cargo run --release --example custom_components -- train examples/configs/custom_components.json
//! ```
//!
//! The program registers a model (`tanh_mlp`), a loss (`focal`), a streaming metric
//! (`iou`), an augmentation (`pixel_dropout`, drawing from the run's seeded augment
//! stream) and a callback (`my_logger`, a file in the run directory at every validation)
//! in a registry that starts with every built-in, then hands the command line to
//! `deeptrain::cli::main_with`. Everything `deeptrain` does works on jobs that name them:
//! `train`, `resume` (which rebuilds them by name, the metric's mid-validation state
//! included), `evaluate` (which reports `iou` too), `predict`, `export`, `list` (which
//! shows their arguments and defaults, read from the argument types and their doc
//! comments).

use candle_core::{DType, Tensor, D};
use candle_nn::{Linear, Module, VarMap};
use deeptrain::callbacks::{Callback, Stage, TrainerView};
use deeptrain::losses::{Loss, Targets};
use deeptrain::metrics::{BatchView, StreamingMetric};
use deeptrain::model::{build_seeded, ForwardCtx};
use deeptrain::registry::{CallbackCtx, LossCtx, MetricCtx, ModelCtx, Registry, TransformCtx};
use deeptrain::transforms::{ApplyCtx, Transform};
use deeptrain::Model;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One hidden layer with tanh, then a linear classifier.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct TanhMlpArgs {
    /// Width of the hidden layer (default 48).
    width: usize,
}

impl Default for TanhMlpArgs {
    fn default() -> Self {
        Self { width: 48 }
    }
}

struct TanhMlp {
    varmap: VarMap,
    hidden: Linear,
    out: Linear,
    width: usize,
}

impl TanhMlp {
    fn new(args: TanhMlpArgs, ctx: &mut ModelCtx) -> deeptrain::Result<Self> {
        let inputs: usize = ctx.sample_shape.iter().product();
        let varmap = VarMap::new();
        // Initial weights from the run's seeded stream: every process builds the same model.
        let (hidden, out) = build_seeded(&varmap, ctx.init, DType::F32, ctx.device, |vb| {
            Ok((
                candle_nn::linear(inputs, args.width, vb.pp("hidden"))?,
                candle_nn::linear(args.width, ctx.outputs, vb.pp("out"))?,
            ))
        })?;
        Ok(Self {
            varmap,
            hidden,
            out,
            width: args.width,
        })
    }
}

impl Model for TanhMlp {
    fn name(&self) -> String {
        format!("tanh_mlp {}", self.width)
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn forward(&mut self, x: &Tensor, _ctx: &mut ForwardCtx) -> deeptrain::Result<Tensor> {
        let x = x.flatten_from(1)?.to_dtype(DType::F32)?;
        Ok(self.out.forward(&self.hidden.forward(&x)?.tanh()?)?)
    }
}

/// Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_target)^gamma, so easy
/// samples count less.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct FocalArgs {
    /// Focusing exponent; 0 is plain cross-entropy (default 2).
    gamma: f64,
}

impl Default for FocalArgs {
    fn default() -> Self {
        Self { gamma: 2.0 }
    }
}

struct Focal {
    gamma: f64,
}

impl Loss for Focal {
    fn name(&self) -> String {
        "focal".into()
    }

    fn targets(&self) -> Targets {
        Targets::ClassIds
    }

    fn forward(
        &self,
        output: &Tensor,
        target: &Tensor,
        weights: Option<&Tensor>,
    ) -> deeptrain::Result<Tensor> {
        let log_p = candle_nn::ops::log_softmax(output, D::Minus1)?;
        let log_pt = log_p.gather(&target.unsqueeze(1)?, 1)?.squeeze(1)?;
        let focus = (1.0 - log_pt.exp()?)?.powf(self.gamma)?;
        let per_sample = (focus * log_pt)?.neg()?;
        Ok(match weights {
            Some(w) => (per_sample * w)?.sum_all()?.div(&w.sum_all()?)?,
            None => per_sample.mean_all()?,
        })
    }
}

/// Intersection over union of predicted and actual class (Jaccard), tp / (tp + fp + fn):
/// of one class, or the mean over the classes that occur.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct IouArgs {
    /// The class measured (default: the mean over every class that occurs).
    class: Option<usize>,
}

/// The streaming state: per class, samples predicted and actual, and both at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IouCounts {
    tp: Vec<u64>,
    fp: Vec<u64>,
    fn_: Vec<u64>,
}

struct Iou {
    class: Option<usize>,
    counts: IouCounts,
}

impl Iou {
    fn new(args: IouArgs, ctx: &MetricCtx) -> deeptrain::Result<Self> {
        let Some(k) = ctx.num_classes else {
            return Err(deeptrain::Error::config(
                "iou",
                "needs class ids as targets",
            ));
        };
        if args.class.is_some_and(|c| c >= k) {
            return Err(deeptrain::Error::config(
                "iou.class",
                format!("{:?} is not one of the {k} classes", args.class),
            ));
        }
        let zeros = vec![0; k];
        Ok(Self {
            class: args.class,
            counts: IouCounts {
                tp: zeros.clone(),
                fp: zeros.clone(),
                fn_: zeros,
            },
        })
    }

    fn iou(&self, c: usize) -> Option<f64> {
        let (tp, fp, fn_) = (self.counts.tp[c], self.counts.fp[c], self.counts.fn_[c]);
        let union = tp + fp + fn_;
        (union > 0).then(|| tp as f64 / union as f64)
    }
}

impl StreamingMetric for Iou {
    fn name(&self) -> String {
        match self.class {
            Some(c) => format!("iou_{c}"),
            None => "iou".into(),
        }
    }

    fn update(&mut self, batch: &BatchView) -> deeptrain::Result<()> {
        let targets = batch.classes().unwrap_or_default();
        for (i, &t) in targets.iter().enumerate() {
            let row = batch.row(i);
            let pred = deeptrain::metrics::argmax(row);
            if pred == t as usize {
                self.counts.tp[pred] += 1;
            } else {
                self.counts.fp[pred] += 1;
                self.counts.fn_[t as usize] += 1;
            }
        }
        Ok(())
    }

    fn values(&self) -> Vec<(String, f64)> {
        let value = match self.class {
            Some(c) => self.iou(c).unwrap_or(f64::NAN),
            None => {
                let present: Vec<f64> = (0..self.counts.tp.len())
                    .filter_map(|c| self.iou(c))
                    .collect();
                present.iter().sum::<f64>() / present.len() as f64
            }
        };
        vec![(self.name(), value)]
    }

    fn reset(&mut self) {
        for v in [
            &mut self.counts.tp,
            &mut self.counts.fp,
            &mut self.counts.fn_,
        ] {
            v.iter_mut().for_each(|x| *x = 0);
        }
    }

    fn save_state(&self) -> serde_json::Value {
        serde_json::to_value(&self.counts).unwrap_or_default()
    }

    fn load_state(&mut self, state: serde_json::Value) -> deeptrain::Result<()> {
        self.counts = serde_json::from_value(state)
            .map_err(|e| deeptrain::Error::config("iou", format!("saved state: {e}")))?;
        Ok(())
    }
}

/// Sets each input value of a train batch to 0 with probability `p` (drawn from the run's
/// augment stream, so a resumed run drops the same values); other batches pass through.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct PixelDropoutArgs {
    /// Probability of zeroing each input value, in [0, 1] (default 0.1).
    p: f64,
}

impl Default for PixelDropoutArgs {
    fn default() -> Self {
        Self { p: 0.1 }
    }
}

fn check_pixel_dropout(args: &PixelDropoutArgs) -> deeptrain::Result<()> {
    if (0.0..=1.0).contains(&args.p) {
        Ok(())
    } else {
        Err(deeptrain::transforms::arg_error(
            "pixel_dropout",
            "p",
            format!("{} is not in [0, 1]", args.p),
        ))
    }
}

struct PixelDropout {
    p: f32,
}

impl Transform for PixelDropout {
    fn name(&self) -> &str {
        "pixel_dropout"
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(
        &self,
        x: Tensor,
        y: Option<Tensor>,
        ctx: &mut ApplyCtx,
    ) -> deeptrain::Result<(Tensor, Option<Tensor>)> {
        if !ctx.train {
            return Ok((x, y));
        }
        // One draw per value, in order, from the stream the trainer checkpoints.
        let keep: Vec<f32> = (0..x.elem_count())
            .map(|_| f32::from(u8::from(ctx.rng.uniform_f32() >= self.p)))
            .collect();
        let keep = Tensor::from_vec(keep, x.shape(), x.device())?;
        Ok(((x.to_dtype(DType::F32)? * keep)?, y))
    }
}

/// Writes the latest validation (its number, epoch and `val_*` values) as JSON into the
/// run directory at every validation's end.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct MyLoggerArgs {
    /// File name in the run directory (default `my_logger.json`).
    file: String,
}

impl Default for MyLoggerArgs {
    fn default() -> Self {
        Self {
            file: "my_logger.json".into(),
        }
    }
}

struct MyLogger {
    path: std::path::PathBuf,
}

impl Callback for MyLogger {
    fn name(&self) -> String {
        "my_logger".into()
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> deeptrain::Result<()> {
        if stage != Stage::ValEnd {
            return Ok(());
        }
        let s = view.state;
        let line = serde_json::json!({
            "validation": s.times_validated,
            "epoch": s.epoch,
            "batches_fit": s.batches_fit,
            "metrics": s.val_history.latest(),
        });
        std::fs::write(&self.path, format!("{line}\n")).map_err(|e| {
            deeptrain::Error::config("my_logger", format!("{}: {e}", self.path.display()))
        })
    }
}

fn main() {
    let mut registry = Registry::with_builtins();
    registry.model("tanh_mlp", |args: TanhMlpArgs, ctx: &mut ModelCtx| {
        Ok(Box::new(TanhMlp::new(args, ctx)?) as Box<dyn Model>)
    });
    registry.loss("focal", |args: FocalArgs, _ctx: &LossCtx| {
        Ok(Box::new(Focal { gamma: args.gamma }) as Box<dyn Loss>)
    });
    registry.metric("iou", |args: IouArgs, ctx: &MetricCtx| {
        Ok(Box::new(Iou::new(args, ctx)?) as Box<dyn StreamingMetric>)
    });
    registry.transform_checked(
        "pixel_dropout",
        check_pixel_dropout,
        |args: PixelDropoutArgs, _ctx: &TransformCtx| {
            Ok(Box::new(PixelDropout { p: args.p as f32 }) as Box<dyn Transform>)
        },
    );
    registry.callback("my_logger", |args: MyLoggerArgs, ctx: &CallbackCtx| {
        let path = ctx.run_dir.join(args.file);
        Ok(Box::new(MyLogger { path }) as Box<dyn Callback>)
    });
    std::process::exit(deeptrain::cli::main_with(registry));
}
