//! From a job config to a ready trainer: model, optimizer, trainer and the built-in
//! callbacks the config asks for.

use super::data::Loaders;
use super::init::{load_weights, trainable_vars};
use super::JobConfig;
use crate::callbacks::{CsvLogger, HealthCheck, Progress, ScheduleCallback, TensorBoard};
use crate::error::{Error, Result};
use crate::losses::Loss;
use crate::metrics::BuiltMetric;
use crate::model::Model;
use crate::model::Task;
use crate::registry::{self, CallbackCtx, LossCtx, MetricCtx, ModelCtx, Registry, ScheduleCtx};
use crate::rng::{RngStream, StreamId};
use crate::trainer::default_loss;
use crate::trainer::Trainer;

impl JobConfig {
    /// Builds the data, model, optimizer and trainer this config describes (an empty
    /// name or run directory is derived first: see [`JobConfig::resolved`]); the model
    /// starts from `init_from`'s weights when it is set, and the optimizer leaves the
    /// `freeze` variables alone.
    pub fn build_trainer(&self) -> Result<Trainer> {
        self.build_with(registry::builtins())
    }

    /// [`JobConfig::build_trainer`] with the components of `registry` (the built-ins and
    /// the user's own): every component the config names must be registered there.
    pub fn build_with(&self, registry: &Registry) -> Result<Trainer> {
        self.build_trainer_inner(registry, true)
    }

    /// The model this config describes with its seeded initial weights (`init_from` is
    /// not applied), sized from the data, which is read.
    pub fn build_model(&self) -> Result<Box<dyn Model>> {
        self.build_model_with(registry::builtins())
    }

    /// [`JobConfig::build_model`] with the models of `registry`.
    pub fn build_model_with(&self, registry: &Registry) -> Result<Box<dyn Model>> {
        self.validate()?;
        let device = self.device.open()?;
        let Loaders { info, .. } = self.loaders_with(registry)?;
        let mut init = RngStream::new(self.train.seed, StreamId::Init);
        self.new_model(registry, &info, &mut init, &device)
    }

    /// The model, sized by the data (`info`: what the train data looks like, as loaded;
    /// the model takes the batches `data.transforms` make of it), with weights drawn from
    /// `init`: the one place a job's model is made, for training, prediction, evaluation
    /// and export alike.
    pub(crate) fn new_model(
        &self,
        registry: &Registry,
        info: &crate::data_loaders::DataInfo,
        init: &mut RngStream,
        device: &candle_core::Device,
    ) -> Result<Box<dyn Model>> {
        let (_, info) = &self.new_transforms(registry, info)?;
        let entry = registry.models.get(&self.model.name)?;
        let mut ctx = ModelCtx {
            sample_shape: &info.sample_shape,
            outputs: info.num_classes.unwrap_or(1),
            num_classes: info.num_classes,
            init,
            device,
        };
        (entry.factory())(&self.model.args, &mut ctx)
    }

    /// `data.class_names` must name every class of the data, and only class ids have them.
    pub(crate) fn check_class_names(&self, info: &crate::data_loaders::DataInfo) -> Result<()> {
        let Some(names) = &self.data.class_names else {
            return Ok(());
        };
        match info.num_classes {
            Some(n) if n == names.len() => Ok(()),
            Some(n) => Err(Error::config(
                "data.class_names",
                format!(
                    "{} names for the {n} classes of {}",
                    names.len(),
                    self.data.source
                ),
            )),
            None => Err(Error::config(
                "data.class_names",
                format!("{} has regression targets, not classes", self.data.source),
            )),
        }
    }

    /// The run's `train.metrics` built by name from `registry`, for `num_classes` classes
    /// (as the transforms leave them); training and `evaluate` both build them here.
    pub(crate) fn new_metrics(
        &self,
        registry: &Registry,
        num_classes: Option<usize>,
    ) -> Result<Vec<BuiltMetric>> {
        let ctx = MetricCtx {
            num_classes,
            class_names: self.data.class_names.as_deref(),
            run_dir: &self.train.run_dir,
        };
        self.train
            .metrics
            .iter()
            .map(|m| registry.build_metric(m, &ctx))
            .collect()
    }

    /// The job's loss for data like `info` (as loaded; the loss takes the labels
    /// `data.transforms` make): the `loss` section, else the task's default (cross-entropy
    /// for class ids, mean squared error for values).
    pub(crate) fn new_loss(
        &self,
        registry: &Registry,
        info: &crate::data_loaders::DataInfo,
    ) -> Result<Box<dyn Loss>> {
        let (_, info) = &self.new_transforms(registry, info)?;
        let Some(loss) = &self.loss else {
            return Ok(default_loss(task_of(info)));
        };
        let counts: Option<Vec<u64>> = info
            .class_counts
            .as_ref()
            .map(|c| c.iter().map(|&n| n as u64).collect());
        let ctx = LossCtx {
            num_classes: info.num_classes,
            outputs: info.num_classes.unwrap_or(1),
            class_counts: counts.as_deref(),
        };
        (registry.losses.get(&loss.name)?.factory())(&loss.args, &ctx)
    }

    /// [`JobConfig::build_trainer`]; `load_init` false skips `init_from` (on resume the
    /// checkpoint's weights replace them, and the source may be gone).
    pub(super) fn build_trainer_inner(
        &self,
        registry: &Registry,
        load_init: bool,
    ) -> Result<Trainer> {
        if self.name.is_empty() || self.train.run_dir.as_os_str().is_empty() {
            return self.resolved().build_trainer_inner(registry, load_init);
        }
        self.validate()?;
        // Every name known and every argument read before any data is touched; the run
        // records the arguments with their defaults filled in.
        let job = &self.resolve_components(registry, true)?;
        job.build_resolved(registry, load_init)
    }

    /// [`JobConfig::build_trainer_inner`] for a config whose components are resolved.
    fn build_resolved(&self, registry: &Registry, load_init: bool) -> Result<Trainer> {
        let device = self.device.open()?;
        let Loaders { train, val, info } = self.loaders_with(registry)?;
        self.check_class_names(&info)?;
        if device.is_cpu() {
            let inputs = info.sample_shape.iter().product();
            self.check_model_memory(inputs, info.num_classes.unwrap_or(1))?;
        }
        let mut init = RngStream::new(self.train.seed, StreamId::Init);
        let model = self.new_model(registry, &info, &mut init, &device)?;
        if let (true, Some(source)) = (load_init, &self.init_from) {
            let report = load_weights(model.varmap(), source, &self.init_map)?;
            log::info!(
                "init_from {}: loaded {} of {} variables ({} source tensors unused)",
                report.source.display(),
                report.loaded.len(),
                report.loaded.len() + report.kept.len(),
                report.unused.len()
            );
        }
        let vars = trainable_vars(model.as_ref(), &self.freeze)?;
        let optimizer =
            (registry.optimizers.get(&self.optimizer.name)?.factory())(&self.optimizer.args, vars)?;
        let loss = self.new_loss(registry, &info)?;
        let (transforms, batches) = self.new_transforms(registry, &info)?;
        let metrics = self.new_metrics(registry, batches.num_classes)?;
        let mut builder = Trainer::builder_boxed(model, optimizer)
            .boxed_data(train, val)
            .config(self.train.clone())
            .batch_size(self.data.batch_size)
            .shuffle(self.data.shuffle)
            .drop_last(self.data.drop_last)
            .device(device)
            .boxed_loss(loss)
            .init_rng(init)
            .built_metrics(metrics)
            .name(self.name.clone())
            .job_config(
                serde_json::to_value(self).map_err(|e| Error::config("job", e.to_string()))?,
            );
        if let Some(n) = self.data.val_batch_size {
            builder = builder.val_batch_size(n);
        }
        if !transforms.is_empty() {
            // The labels as the transforms make them (a `label_map` changes the classes).
            builder = builder.task(task_of(&batches)).transforms(transforms);
        }
        let mut trainer = builder.build()?;
        self.add_callbacks(registry, &mut trainer)?;
        Ok(trainer)
    }

    /// The built-in callbacks this job asks for (the `schedule` section is one, driving
    /// the learning rate), in a fixed order (their saved state is matched by name on
    /// resume), then the `callbacks` list in its order.
    fn add_callbacks(&self, registry: &Registry, trainer: &mut Trainer) -> Result<()> {
        let dir = &self.train.run_dir;
        let l = &self.logging;
        trainer.add_callback(HealthCheck::new(l.health))?;
        if let Some(s) = &self.schedule {
            let batches = trainer.batches_per_epoch()?;
            let ctx = ScheduleCtx {
                base_lr: trainer.base_learning_rate(),
                epochs: self.train.epochs,
                steps_per_epoch: batches.div_ceil(self.train.accumulate_batches.max(1)),
                max_steps: self.train.max_steps,
            };
            let schedule = (registry.schedules.get(&s.name)?.factory())(&s.args, &ctx)?;
            trainer.add_callback(ScheduleCallback::new(schedule, ctx.base_lr))?;
        }
        if let Some(es) = &self.early_stopping {
            trainer.add_callback(es.callback())?;
        }
        if l.csv {
            trainer.add_callback(CsvLogger::new(dir.join("logs")))?;
        }
        if l.tensorboard {
            trainer.add_callback(
                TensorBoard::new(dir.join("tensorboard"))
                    .histogram_every(l.histogram_every)
                    .text("config", self.to_json()),
            )?;
        }
        if l.progress {
            trainer.add_callback(Progress::new(self.train.epochs))?;
        }
        let ctx = CallbackCtx {
            run_dir: dir,
            epochs: self.train.epochs,
        };
        for c in &self.callbacks {
            let cb = (registry.callbacks.get(&c.name)?.factory())(&c.args, &ctx)?;
            trainer.add_boxed_callback(cb)?;
        }
        Ok(())
    }
}

/// What a model's outputs mean for data like `info`: classes when its labels are class
/// ids, else values.
pub(crate) fn task_of(info: &crate::data_loaders::DataInfo) -> Task {
    match info.num_classes {
        Some(num_classes) => Task::Classification { num_classes },
        None => Task::Regression,
    }
}
