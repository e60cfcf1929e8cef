//! The built-in metrics a job's `train.metrics` can name, and their argument types: the
//! fixed set of [`crate::metrics::MetricSet`] (checkpointed in the train state, as always),
//! `roc_auc` (binary, or one-vs-rest over more classes), and `confusion_matrix`, which
//! writes JSON and a PNG figure into the run directory at every validation.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{
    Average, BuiltMetric, ConfusionMatrix, ConfusionMatrixMetric, ConfusionWriter, Metric,
    OvrRocAuc, ValidationEnd,
};
use crate::range::at_least_one;
use crate::registry::Registry;
use crate::report::confusion::render_confusion_matrix;

/// Argument types of metrics without arguments; the doc comment is what `deeptrain list
/// metrics` prints.
macro_rules! no_args {
    ($($name:ident: $doc:literal),* $(,)?) => {$(
        #[doc = $doc]
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {}
    )*};
}

no_args! {
    LossArgs: "Mean loss per sample (always logged, listed or not).",
    AccuracyArgs: "Fraction of samples whose highest score is the target (first maximum on ties).",
    PrecisionBinaryArgs: "Precision of class 1, tp / (tp + fp); two classes only.",
    PrecisionMacroArgs: "Precision per class, unweighted mean over the classes that occur.",
    PrecisionMicroArgs: "Precision from global counts (equals accuracy for single-label data).",
    RecallBinaryArgs: "Recall of class 1, tp / (tp + fn); two classes only.",
    RecallMacroArgs: "Recall per class, unweighted mean over the classes that occur.",
    RecallMicroArgs: "Recall from global counts (equals accuracy for single-label data).",
    F1BinaryArgs: "F1 of class 1, 2tp / (2tp + fp + fn); two classes only.",
    F1MacroArgs: "F1 per class, unweighted mean over the classes that occur.",
    F1MicroArgs: "F1 from global counts (equals accuracy for single-label data).",
    RocAucArgs: "Exact ROC-AUC (ties count 1/2): binary on the class-1 score; with more classes one-vs-rest, macro-averaged over the softmax probabilities (scikit-learn's multi_class=\"ovr\").",
    MseArgs: "Mean squared error over every predicted value (regression).",
    MaeArgs: "Mean absolute error over every predicted value (regression).",
    R2Args: "Coefficient of determination, as scikit-learn's r2_score (regression).",
}

/// Fraction of samples whose target is among the `k` highest scores (ties in the
/// target's favour); also spelled `top5_accuracy`, logged as `top{k}_accuracy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TopKAccuracyArgs {
    /// How many of the highest scores count, at least 1 (default 5).
    pub k: usize,
}

impl Default for TopKAccuracyArgs {
    fn default() -> Self {
        Self { k: 5 }
    }
}

impl TopKAccuracyArgs {
    /// Checks `k`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("top_k_accuracy.k", self.k as u64)
    }
}

/// Counts of validation samples by actual and predicted class, written at every
/// validation as `confusion_matrix.json` and `confusion_matrix.png` in the run directory
/// (no scalar is logged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConfusionMatrixArgs {
    /// Also keep every validation's files, `confusion/validation_NNN.json` and `.png`
    /// (default true).
    pub history: bool,
}

impl Default for ConfusionMatrixArgs {
    fn default() -> Self {
        Self { history: true }
    }
}

/// Registers the built-in metrics.
pub(super) fn register(r: &mut Registry) {
    fixed(r, "loss", Metric::Loss, |_: LossArgs| ());
    fixed(r, "accuracy", Metric::Accuracy, |_: AccuracyArgs| ());
    use Average::{Binary, Macro, Micro};
    fixed(
        r,
        "precision_binary",
        Metric::Precision(Binary),
        |_: PrecisionBinaryArgs| (),
    );
    fixed(
        r,
        "precision_macro",
        Metric::Precision(Macro),
        |_: PrecisionMacroArgs| (),
    );
    fixed(
        r,
        "precision_micro",
        Metric::Precision(Micro),
        |_: PrecisionMicroArgs| (),
    );
    fixed(
        r,
        "recall_binary",
        Metric::Recall(Binary),
        |_: RecallBinaryArgs| (),
    );
    fixed(
        r,
        "recall_macro",
        Metric::Recall(Macro),
        |_: RecallMacroArgs| (),
    );
    fixed(
        r,
        "recall_micro",
        Metric::Recall(Micro),
        |_: RecallMicroArgs| (),
    );
    fixed(r, "f1_binary", Metric::F1(Binary), |_: F1BinaryArgs| ());
    fixed(r, "f1_macro", Metric::F1(Macro), |_: F1MacroArgs| ());
    fixed(r, "f1_micro", Metric::F1(Micro), |_: F1MicroArgs| ());
    fixed(r, "mse", Metric::Mse, |_: MseArgs| ());
    fixed(r, "mae", Metric::Mae, |_: MaeArgs| ());
    fixed(r, "r2", Metric::R2, |_: R2Args| ());
    r.metric_built(
        "top_k_accuracy",
        TopKAccuracyArgs::validate,
        |a: TopKAccuracyArgs, _| Ok(BuiltMetric::Standard(Metric::TopKAccuracy(a.k))),
    );
    r.metric_built(
        "roc_auc",
        |_| Ok(()),
        |_: RocAucArgs, ctx| match ctx.num_classes {
            Some(2) => Ok(BuiltMetric::Standard(Metric::RocAuc)),
            Some(k) if k > 2 => Ok(BuiltMetric::Streaming(Box::new(OvrRocAuc::new(k)?))),
            other => Err(Error::config(
                "train.metrics",
                format!("`roc_auc` needs at least 2 classes, the data has {other:?}"),
            )),
        },
    );
    r.metric_built(
        "confusion_matrix",
        |_| Ok(()),
        |a: ConfusionMatrixArgs, ctx| {
            let Some(k) = ctx.num_classes else {
                return Err(Error::config(
                    "train.metrics",
                    "`confusion_matrix` needs class ids as targets, the data has values",
                ));
            };
            let names = match ctx.class_names {
                Some(n) if n.len() == k => n.to_vec(),
                _ => (0..k).map(|c| c.to_string()).collect(),
            };
            let write = confusion_writer(ctx.run_dir.to_path_buf(), names, a.history);
            Ok(BuiltMetric::Streaming(Box::new(
                ConfusionMatrixMetric::new(k, write)?,
            )))
        },
    );
}

/// Registers `name` as the fixed-set `metric`, arguments read as `A` (none).
fn fixed<A: crate::registry::Args>(r: &mut Registry, name: &str, metric: Metric, _: fn(A)) {
    r.metric_built(
        name,
        |_: &A| Ok(()),
        move |_: A, _| Ok(BuiltMetric::Standard(metric)),
    );
}

/// Writes `confusion_matrix.json` and `.png` into `run_dir` (and, with `history`, into
/// `run_dir/confusion/validation_NNN.*`), each atomically.
fn confusion_writer(run_dir: PathBuf, names: Vec<String>, history: bool) -> ConfusionWriter {
    Box::new(move |at: &ValidationEnd, m: &ConfusionMatrix| {
        let k = m.num_classes();
        let counts: Vec<Vec<u64>> = (0..k)
            .map(|a| (0..k).map(|p| m.count(a, p)).collect())
            .collect();
        let json = serde_json::json!({
            "validation": at.validation,
            "epoch": at.epoch,
            "batches_fit": at.batches_fit,
            "samples": m.total(),
            "classes": names,
            "rows": "actual",
            "columns": "predicted",
            "counts": counts,
        });
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        let title = format!(
            "confusion matrix, validation {} (epoch {}, {} samples)",
            at.validation,
            at.epoch,
            m.total()
        );
        let mut bases = vec![run_dir.join("confusion_matrix")];
        if history {
            let dir = run_dir.join("confusion");
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            bases.push(dir.join(format!("validation_{:03}", at.validation)));
        }
        for base in bases {
            write_atomically(&base.with_extension("json"), &text)?;
            render_confusion_matrix(&title, &counts, &names, &base.with_extension("png"))?;
        }
        Ok(())
    })
}

/// Writes `text` to `path` through a temporary file renamed into place.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(text.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
