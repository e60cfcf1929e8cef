//! Components by name: what a job config's `"name": "cnn"` means.
//!
//! A [`Registry`] maps names to factories, one table per kind of component (models,
//! losses, optimizers, schedules, callbacks, transforms, metrics, sources). Every factory
//! takes its arguments as a typed, serde-readable struct, so the JSON of a job file is
//! checked by the component's own type (an unknown or mistyped argument names the component
//! and the argument), and `deeptrain list` prints every argument with its type, default and
//! doc from the same type's schema.
//! The built-ins are registered through the same calls a user's program makes
//! ([`Registry::with_builtins`]); the job builder, `Trainer::resume_with` and the CLI
//! (`cli::main_with`) only ever look components up here.

mod builtins;
mod component;
mod schema;
mod source;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::callbacks::Callback;
use crate::error::{Error, Result};
use crate::losses::Loss;
use crate::metrics::{BuiltMetric, Metric, MetricSpec, StreamingMetric};
use crate::model::Model;
use crate::optim::{LrSchedule, NamedVar, TrainOptimizer};
use crate::rng::RngStream;
use crate::transforms::{BatchSpec, Transform};

pub use builtins::{
    AdagradArgs, AdamArgs, CalibrationArgs, ConfusionMatrixArgs, ConstantArgs, CosineArgs,
    EarlyStoppingArgs, ExponentialArgs, LionArgs, MlpArgs, MultiStepArgs, OneCycleArgs,
    RecurrentArgs, ReduceOnPlateauArgs, RmspropArgs, SgdArgs, StepArgs, TopKAccuracyArgs,
};
pub use component::Component;
pub use schema::ArgInfo;
pub use source::{SourceCtx, SourceData};

/// What a model factory is told besides its arguments.
pub struct ModelCtx<'a> {
    /// Shape of one input sample, without the batch axis (`[1, 28, 28]`, `[64]`).
    pub sample_shape: &'a [usize],
    /// Outputs per sample: the number of classes, or 1 for one regression target.
    pub outputs: usize,
    /// The number of classes when the targets are class ids.
    pub num_classes: Option<usize>,
    /// The run's seeded initialisation stream: draw every initial weight from it (see
    /// [`crate::model::seeded_var_builder`] for candle-nn layers).
    pub init: &'a mut RngStream,
    /// Where the model's variables live.
    pub device: &'a Device,
}

/// What a loss factory is told besides its arguments.
pub struct LossCtx<'a> {
    /// The number of classes when the targets are class ids.
    pub num_classes: Option<usize>,
    /// Outputs per sample of the model.
    pub outputs: usize,
    /// Train samples per class, where the data counts them (`"balanced"` weights).
    pub class_counts: Option<&'a [u64]>,
}

/// What a callback factory is told besides its arguments.
pub struct CallbackCtx<'a> {
    /// The run directory (logs of a callback belong under it).
    pub run_dir: &'a Path,
    /// The run's planned number of epochs.
    pub epochs: u64,
}

/// What a schedule factory is told besides its arguments: the rate it starts from and
/// how long the run is.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleCtx {
    /// The optimizer's configured rate (the schedule's base; the trainer sets the
    /// scheduled rate in the optimizer before every batch).
    pub base_lr: f64,
    /// The run's planned number of epochs.
    pub epochs: u64,
    /// Optimizer steps per epoch: train batches per epoch over `accumulate_batches`,
    /// rounded up (time-series windows are not counted: each window steps).
    pub steps_per_epoch: u64,
    /// `train.max_steps`, when the run has one.
    pub max_steps: Option<u64>,
}

impl ScheduleCtx {
    /// The optimizer steps the run plans: `epochs * steps_per_epoch`, or `max_steps` when
    /// fewer (at least 1).
    pub fn planned_steps(&self) -> u64 {
        let by_epochs = self.epochs.saturating_mul(self.steps_per_epoch);
        self.max_steps
            .map_or(by_epochs, |m| m.min(by_epochs))
            .max(1)
    }
}

/// What a transform factory is told besides its arguments.
pub struct TransformCtx<'a> {
    /// What the batches look like where the transform sits in the chain: after the
    /// transforms before it (sample shape, classes, class counts).
    pub input: &'a BatchSpec,
}

/// What a metric factory is told besides its arguments.
pub struct MetricCtx<'a> {
    /// The number of classes when the targets are class ids (as the model outputs them,
    /// after `data.transforms`); `None` for regression.
    pub num_classes: Option<usize>,
    /// `data.class_names`, when the job names its classes.
    pub class_names: Option<&'a [String]>,
    /// The run directory (files a metric writes belong under it).
    pub run_dir: &'a Path,
}

/// Builds a model from its JSON arguments.
pub type ModelFactory =
    dyn Fn(&Map<String, Value>, &mut ModelCtx) -> Result<Box<dyn Model>> + Send + Sync;
/// Builds a loss from its JSON arguments.
pub type LossFactory = dyn Fn(&Map<String, Value>, &LossCtx) -> Result<Box<dyn Loss>> + Send + Sync;
/// Builds an optimizer over the trainable variables from its JSON arguments.
pub type OptimizerFactory =
    dyn Fn(&Map<String, Value>, Vec<NamedVar>) -> Result<Box<dyn TrainOptimizer>> + Send + Sync;
/// Builds a learning-rate schedule from its JSON arguments.
pub type ScheduleFactory =
    dyn Fn(&Map<String, Value>, &ScheduleCtx) -> Result<Box<dyn LrSchedule>> + Send + Sync;
/// Builds a callback from its JSON arguments.
pub type CallbackFactory =
    dyn Fn(&Map<String, Value>, &CallbackCtx) -> Result<Box<dyn Callback>> + Send + Sync;

/// Builds a transform of batches from its JSON arguments.
pub type TransformFactory =
    dyn Fn(&Map<String, Value>, &TransformCtx) -> Result<Box<dyn Transform>> + Send + Sync;

/// Builds a metric from its JSON arguments.
pub type MetricFactory =
    dyn Fn(&Map<String, Value>, &MetricCtx) -> Result<BuiltMetric> + Send + Sync;
/// Builds the loaders of a data source from its JSON arguments.
pub type SourceFactory =
    dyn Fn(&Map<String, Value>, &SourceCtx) -> Result<SourceData> + Send + Sync;

/// Reads a component's arguments and writes them back with every default filled in.
type Resolver = dyn Fn(&Map<String, Value>) -> Result<Map<String, Value>> + Send + Sync;

/// One registered component: its description and arguments for `list`, and its factory.
pub struct Entry<F: ?Sized> {
    name: String,
    describe: fn() -> (String, Vec<ArgInfo>),
    /// Reads the arguments and writes them back with every default filled in.
    resolve: Box<Resolver>,
    build: Arc<F>,
}

impl<F: ?Sized> Entry<F> {
    /// The registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One line saying what it is (the first paragraph of its argument type's doc
    /// comment) and its arguments: name, type, default and doc.
    pub fn describe(&self) -> (String, Vec<ArgInfo>) {
        (self.describe)()
    }

    /// The factory.
    pub fn factory(&self) -> &F {
        &self.build
    }
}

/// The components of one kind, by name.
pub struct Kind<F: ?Sized> {
    /// `model`, `loss`, ...: names the kind in errors and listings.
    label: &'static str,
    entries: BTreeMap<String, Entry<F>>,
}

impl<F: ?Sized> Kind<F> {
    fn new(label: &'static str) -> Self {
        Self {
            label,
            entries: BTreeMap::new(),
        }
    }

    /// `model`, `loss`, ...
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &Entry<F>> {
        self.entries.values()
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The entry named `name`; an unknown name is an error that lists the registered
    /// ones and the nearest match.
    pub fn get(&self, name: &str) -> Result<&Entry<F>> {
        self.entries
            .get(name)
            .ok_or_else(|| Error::config(format!("{}.name", self.label), self.unknown(name)))
    }

    fn unknown(&self, name: &str) -> String {
        let names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        let nearest = names
            .iter()
            .map(|n| (strsim::damerau_levenshtein(name, n), *n))
            .filter(|(d, n)| *d <= 2.max(n.len() / 3))
            .min();
        let hint = match nearest {
            Some((_, n)) => format!(" (did you mean `{n}`?)"),
            None => String::new(),
        };
        format!(
            "unknown {} `{name}`{hint}; registered: {}",
            self.label,
            names.join(", ")
        )
    }

    fn insert<A: Args>(&mut self, name: &str, read: Reader<A>, build: Arc<F>) {
        self.entries.insert(
            name.to_string(),
            Entry {
                name: name.to_string(),
                describe: schema::describe::<A>,
                resolve: Box::new(move |map| {
                    let args: A = read(map)?;
                    match serde_json::to_value(args) {
                        Ok(Value::Object(m)) => Ok(m),
                        _ => Ok(map.clone()),
                    }
                }),
                build,
            },
        );
    }

    /// `component` with every argument read and written back with its defaults filled
    /// in: what a run directory records, so that reading it later means the same.
    pub fn resolve(&self, component: &Component) -> Result<Component> {
        let entry = self.get(&component.name)?;
        Ok(Component {
            name: component.name.clone(),
            args: (entry.resolve)(&component.args)?,
        })
    }
}

/// What a component's argument type must be: read from JSON, written back with its
/// defaults filled in, described by its schema.
pub trait Args: DeserializeOwned + Serialize + Default + JsonSchema + 'static {}
impl<A: DeserializeOwned + Serialize + Default + JsonSchema + 'static> Args for A {}

/// Reads and checks one component's arguments.
type Reader<A> = Arc<dyn Fn(&Map<String, Value>) -> Result<A> + Send + Sync>;

/// A reader of `A` for the `label` component `name`, with `validate` run on the result.
fn reader<A: Args>(label: &'static str, name: &str, validate: fn(&A) -> Result<()>) -> Reader<A> {
    let name = name.to_string();
    Arc::new(move |map| {
        let args = parse_args::<A>(label, &name, map)?;
        validate(&args)?;
        Ok(args)
    })
}

/// Reads `map` as the arguments of the `label` component `name`; errors name both and
/// the argument (`model \`cnn\`: argument \`chanels\`: unknown field ...`).
pub fn parse_args<A: DeserializeOwned>(
    label: &str,
    name: &str,
    map: &Map<String, Value>,
) -> Result<A> {
    serde_path_to_error::deserialize(Value::Object(map.clone())).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." {
            String::new()
        } else {
            format!(" argument `{path}`:")
        };
        Error::config(label, format!("`{name}`:{at} {inner}"))
    })
}

/// Every component a job can name, by kind. See the module doc.
pub struct Registry {
    /// `"model": {"name": ...}`.
    pub models: Kind<ModelFactory>,
    /// `"loss": {"name": ...}`.
    pub losses: Kind<LossFactory>,
    /// `"optimizer": {"name": ...}`.
    pub optimizers: Kind<OptimizerFactory>,
    /// `"callbacks": [{"name": ...}, ...]`.
    pub callbacks: Kind<CallbackFactory>,
    /// `"schedule": {"name": ...}`.
    pub schedules: Kind<ScheduleFactory>,
    /// `"data": {"transforms": [{"name": ...}, ...]}`.
    pub transforms: Kind<TransformFactory>,
    /// `"train": {"metrics": ["accuracy", {"name": ...}, ...]}`.
    pub metrics: Kind<MetricFactory>,
    /// `"data": {"source": {"name": ...}}` (and `val_source`).
    pub sources: Kind<SourceFactory>,
}

/// The built-in registry, made once: what a job config is checked against when it is
/// read, before a user's registry (if any) is known.
pub fn builtins() -> &'static Registry {
    static BUILTINS: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    BUILTINS.get_or_init(Registry::with_builtins)
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl Registry {
    /// A registry with nothing in it (see [`Registry::with_builtins`]).
    pub fn empty() -> Self {
        Self {
            models: Kind::new("model"),
            losses: Kind::new("loss"),
            optimizers: Kind::new("optimizer"),
            callbacks: Kind::new("callback"),
            schedules: Kind::new("schedule"),
            transforms: Kind::new("transform"),
            metrics: Kind::new("metric"),
            sources: Kind::new("source"),
        }
    }

    /// Every built-in component, registered as a user's would be.
    pub fn with_builtins() -> Self {
        let mut r = Self::empty();
        builtins::register(&mut r);
        r
    }

    /// Registers a model: `build` gets its typed arguments and what the data says about
    /// the model's size. A second registration under a name replaces the first.
    pub fn model<A: Args>(
        &mut self,
        name: &str,
        build: impl Fn(A, &mut ModelCtx) -> Result<Box<dyn Model>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.model_checked(name, |_| Ok(()), build)
    }

    /// [`Registry::model`] with `validate` run on the arguments whenever they are read
    /// (also when a job config is checked, before anything is built).
    pub fn model_checked<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, &mut ModelCtx) -> Result<Box<dyn Model>> + Send + Sync + 'static,
    ) -> &mut Self {
        let read = reader(self.models.label, name, validate);
        let r = read.clone();
        let factory: Arc<ModelFactory> = Arc::new(move |map, ctx| build(r(map)?, ctx));
        self.models.insert(name, read, factory);
        self
    }

    /// Registers a loss: `build` gets its typed arguments and what the data says (classes,
    /// outputs, class counts).
    pub fn loss<A: Args>(
        &mut self,
        name: &str,
        build: impl Fn(A, &LossCtx) -> Result<Box<dyn Loss>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.loss_checked(name, |_| Ok(()), build)
    }

    /// [`Registry::loss`] with `validate` run on the arguments whenever they are read.
    pub fn loss_checked<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, &LossCtx) -> Result<Box<dyn Loss>> + Send + Sync + 'static,
    ) -> &mut Self {
        let read = reader(self.losses.label, name, validate);
        let r = read.clone();
        let factory: Arc<LossFactory> = Arc::new(move |map, ctx| build(r(map)?, ctx));
        self.losses.insert(name, read, factory);
        self
    }

    /// Registers an optimizer: `build` gets its typed arguments and the variables to train.
    pub fn optimizer<A: Args>(
        &mut self,
        name: &str,
        build: impl Fn(A, Vec<NamedVar>) -> Result<Box<dyn TrainOptimizer>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.optimizer_checked(name, |_| Ok(()), build)
    }

    /// [`Registry::optimizer`] with `validate` run on the arguments whenever they are read.
    pub fn optimizer_checked<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, Vec<NamedVar>) -> Result<Box<dyn TrainOptimizer>> + Send + Sync + 'static,
    ) -> &mut Self {
        let read = reader(self.optimizers.label, name, validate);
        let r = read.clone();
        let factory: Arc<OptimizerFactory> = Arc::new(move |map, vars| build(r(map)?, vars));
        self.optimizers.insert(name, read, factory);
        self
    }

    /// Registers a learning-rate schedule: `build` gets its typed arguments and the run's
    /// base rate and length.
    pub fn schedule<A: Args>(
        &mut self,
        name: &str,
        build: impl Fn(A, &ScheduleCtx) -> Result<Box<dyn LrSchedule>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.schedule_checked(name, |_| Ok(()), build)
    }

    /// [`Registry::schedule`] with `validate` run on the arguments whenever they are read.
    pub fn schedule_checked<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, &ScheduleCtx) -> Result<Box<dyn LrSchedule>> + Send + Sync + 'static,
    ) -> &mut Self {
        let read = reader(self.schedules.label, name, validate);
        let r = read.clone();
        let factory: Arc<ScheduleFactory> = Arc::new(move |map, ctx| build(r(map)?, ctx));
        self.schedules.insert(name, read, factory);
        self
    }

    /// Registers a callback a job can list under `callbacks`.
    pub fn callback<A: Args>(
        &mut self,
        name: &str,
        build: impl Fn(A, &CallbackCtx) -> Result<Box<dyn Callback>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.callback_checked(name, |_| Ok(()), build)
    }

    /// [`Registry::callback`] with `validate` run on the arguments whenever they are read.
    pub fn callback_checked<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, &CallbackCtx) -> Result<Box<dyn Callback>> + Send + Sync + 'static,
    ) -> &mut Self {
        let read = reader(self.callbacks.label, name, validate);
        let r = read.clone();
        let factory: Arc<CallbackFactory> = Arc::new(move |map, ctx| build(r(map)?, ctx));
        self.callbacks.insert(name, read, factory);
        self
    }

    /// Registers a transform a job can list under `data.transforms`: `build` gets its
    /// typed arguments and what the batches look like before it.
    pub fn transform<A: Args>(
        &mut self,
        name: &str,
        build: impl Fn(A, &TransformCtx) -> Result<Box<dyn Transform>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.transform_checked(name, |_| Ok(()), build)
    }

    /// [`Registry::transform`] with `validate` run on the arguments whenever they are read.
    pub fn transform_checked<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, &TransformCtx) -> Result<Box<dyn Transform>> + Send + Sync + 'static,
    ) -> &mut Self {
        let read = reader(self.transforms.label, name, validate);
        let r = read.clone();
        let factory: Arc<TransformFactory> = Arc::new(move |map, ctx| build(r(map)?, ctx));
        self.transforms.insert(name, read, factory);
        self
    }

    /// Registers a metric a job can list under `train.metrics`: `build` gets its typed
    /// arguments and what the data says (classes, class names) and makes a
    /// [`StreamingMetric`], whose state is saved in every checkpoint.
    pub fn metric<A: Args>(
        &mut self,
        name: &str,
        build: impl Fn(A, &MetricCtx) -> Result<Box<dyn StreamingMetric>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.metric_checked(name, |_| Ok(()), build)
    }

    /// [`Registry::metric`] with `validate` run on the arguments whenever they are read.
    pub fn metric_checked<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, &MetricCtx) -> Result<Box<dyn StreamingMetric>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.metric_built(name, validate, move |a, ctx| {
            Ok(BuiltMetric::Streaming(build(a, ctx)?))
        })
    }

    /// [`Registry::metric_checked`] for a factory that may also pick a metric of the
    /// fixed set (how the built-ins are registered).
    pub fn metric_built<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, &MetricCtx) -> Result<BuiltMetric> + Send + Sync + 'static,
    ) -> &mut Self {
        let read = reader(self.metrics.label, name, validate);
        let r = read.clone();
        let factory: Arc<MetricFactory> = Arc::new(move |map, ctx| build(r(map)?, ctx));
        self.metrics.insert(name, read, factory);
        self
    }

    /// Builds the metric a job's `train.metrics` entry names. `top{k}_accuracy` (e.g.
    /// `top5_accuracy`) is `top_k_accuracy` with that `k`; an unknown name lists the
    /// registered ones and the nearest match.
    pub fn build_metric(&self, spec: &MetricSpec, ctx: &MetricCtx) -> Result<BuiltMetric> {
        let spec = self.metric_component(spec)?;
        let entry = self.metric_entry(&spec.name)?;
        (entry.factory())(&spec.args, ctx)
    }

    /// `spec` with its arguments read by the metric's type and written back with their
    /// defaults filled in (a `top{k}_accuracy` spelling is kept as it is); `strict`
    /// false keeps names this registry does not know as they are.
    pub fn resolve_metric(&self, spec: &MetricSpec, strict: bool) -> Result<MetricSpec> {
        if top_k_spelling(spec).is_some() {
            return Ok(spec.clone());
        }
        if !strict && !self.metrics.contains(&spec.name) {
            return Ok(spec.clone());
        }
        let entry = self.metric_entry(&spec.name)?;
        Ok(MetricSpec {
            name: spec.name.clone(),
            args: (entry.resolve)(&spec.args)?,
        })
    }

    /// The entry of metric `name`; unknown names are an error of `train.metrics`.
    fn metric_entry(&self, name: &str) -> Result<&Entry<MetricFactory>> {
        self.metrics
            .entries
            .get(name)
            .ok_or_else(|| Error::config("train.metrics", self.metrics.unknown(name)))
    }

    /// `spec` as the registry names it: `top5_accuracy` is `top_k_accuracy` with `k` 5.
    fn metric_component(&self, spec: &MetricSpec) -> Result<Component> {
        if let Some(k) = top_k_spelling(spec) {
            if !self.metrics.contains(&spec.name) {
                let mut c = Component::named("top_k_accuracy");
                c.set("k", k);
                return Ok(c);
            }
        }
        Ok(Component {
            name: spec.name.clone(),
            args: spec.args.clone(),
        })
    }

    /// Registers a data source a job can name in `data.source` (and `data.val_source`):
    /// `build` gets its typed arguments and the job's batching settings.
    pub fn source<A: Args>(
        &mut self,
        name: &str,
        build: impl Fn(A, &SourceCtx) -> Result<SourceData> + Send + Sync + 'static,
    ) -> &mut Self {
        self.source_checked(name, |_| Ok(()), build)
    }

    /// [`Registry::source`] with `validate` run on the arguments whenever they are read.
    pub fn source_checked<A: Args>(
        &mut self,
        name: &str,
        validate: fn(&A) -> Result<()>,
        build: impl Fn(A, &SourceCtx) -> Result<SourceData> + Send + Sync + 'static,
    ) -> &mut Self {
        let read = reader(self.sources.label, name, validate);
        let r = read.clone();
        let factory: Arc<SourceFactory> = Arc::new(move |map, ctx| build(r(map)?, ctx));
        self.sources.insert(name, read, factory);
        self
    }

    /// Every kind with its entries described, in the order `deeptrain list` prints them.
    pub fn listing(&self) -> Vec<KindListing> {
        fn of<F: ?Sized>(plural: &'static str, slot: &'static str, kind: &Kind<F>) -> KindListing {
            KindListing {
                plural,
                slot,
                label: kind.label,
                entries: kind
                    .entries()
                    .map(|e| {
                        let (about, args) = e.describe();
                        ListedComponent {
                            name: e.name.clone(),
                            about,
                            args,
                        }
                    })
                    .collect(),
            }
        }
        vec![
            of("models", r#""model": {"name": ...}"#, &self.models),
            of("losses", r#""loss": {"name": ...}"#, &self.losses),
            of(
                "optimizers",
                r#""optimizer": {"name": ...}"#,
                &self.optimizers,
            ),
            of("schedules", r#""schedule": {"name": ...}"#, &self.schedules),
            of(
                "callbacks",
                r#""callbacks": [{"name": ...}]"#,
                &self.callbacks,
            ),
            of(
                "transforms",
                r#""data": {"transforms": [{"name": ...}]}"#,
                &self.transforms,
            ),
            of("metrics", r#""train": {"metrics": [...]}"#, &self.metrics),
            of(
                "sources",
                r#""data": {"source": {"name": ...}}"#,
                &self.sources,
            ),
        ]
    }
}

/// The `k` of a `top{k}_accuracy` spelling without arguments.
fn top_k_spelling(spec: &MetricSpec) -> Option<usize> {
    match Metric::from_name(&spec.name) {
        Ok(Metric::TopKAccuracy(k)) if spec.args.is_empty() => Some(k),
        _ => None,
    }
}

/// One kind of component as `deeptrain list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KindListing {
    /// `models`, `losses`, ...: what `deeptrain list KIND` takes.
    pub plural: &'static str,
    /// Where a job config names one, e.g. `"model": {"name": ...}`.
    pub slot: &'static str,
    /// `model`, `loss`, ...
    pub label: &'static str,
    /// Every entry, sorted by name.
    pub entries: Vec<ListedComponent>,
}

/// One component as `deeptrain list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedComponent {
    /// Its registered name.
    pub name: String,
    /// What it is, in one line.
    pub about: String,
    /// Its arguments.
    pub args: Vec<ArgInfo>,
}
