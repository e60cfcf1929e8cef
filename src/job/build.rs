//! From a job config to a ready trainer: model, optimizer, trainer and the built-in
//! callbacks the config asks for.

use super::data::Loaders;
use super::{JobConfig, ModelConfig, OptimizerConfig};
use crate::callbacks::{CsvLogger, EarlyStopping, HealthCheck, Progress, TensorBoard};
use crate::error::{Error, Result};
use crate::model::{Mlp, MlpConfig, Model};
use crate::optim::{Adam, AdamConfig, AdamW, Sgd, SgdConfig, TrainOptimizer};
use crate::rng::{RngStream, StreamId};
use crate::trainer::Trainer;

impl JobConfig {
    /// Builds the data, model, optimizer and trainer this config describes.
    pub fn build_trainer(&self) -> Result<Trainer> {
        self.validate()?;
        let device = self.device.open()?;
        let Loaders { train, val, info } = self.loaders()?;
        let mut init = RngStream::new(self.train.seed, StreamId::Init);
        let model = match &self.model {
            ModelConfig::Mlp(m) => Mlp::new(
                MlpConfig {
                    inputs: info.sample_shape.iter().product(),
                    hidden: m.hidden.clone(),
                    outputs: info.num_classes.unwrap_or(1),
                    dropout: m.dropout as f32,
                },
                &mut init,
                &device,
            )?,
        };
        let adam = |a: &super::AdamSettings| AdamConfig {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: a.weight_decay,
        };
        let optimizer: Box<dyn TrainOptimizer> = match &self.optimizer {
            OptimizerConfig::AdamW(a) => Box::new(AdamW::from_varmap(model.varmap(), adam(a))),
            OptimizerConfig::Adam(a) => Box::new(Adam::from_varmap(model.varmap(), adam(a))),
            OptimizerConfig::Sgd(s) => Box::new(Sgd::from_varmap(
                model.varmap(),
                SgdConfig {
                    lr: s.lr,
                    momentum: s.momentum,
                    dampening: s.dampening,
                    nesterov: s.nesterov,
                    weight_decay: s.weight_decay,
                },
            )),
        };
        let mut builder = Trainer::builder_boxed(Box::new(model), optimizer)
            .boxed_data(train, val)
            .config(self.train.clone())
            .batch_size(self.data.batch_size)
            .shuffle(self.data.shuffle)
            .drop_last(self.data.drop_last)
            .device(device)
            .init_rng(init)
            .name(self.name.clone())
            .job_config(
                serde_json::to_value(self).map_err(|e| Error::config("job", e.to_string()))?,
            );
        if let Some(n) = self.data.val_batch_size {
            builder = builder.val_batch_size(n);
        }
        let mut trainer = builder.build()?;
        self.add_callbacks(&mut trainer)?;
        Ok(trainer)
    }

    /// The built-in callbacks this job asks for, in a fixed order (their saved state is
    /// matched by name on resume).
    fn add_callbacks(&self, trainer: &mut Trainer) -> Result<()> {
        let dir = &self.train.run_dir;
        let l = &self.logging;
        trainer.add_callback(HealthCheck::new(l.health))?;
        if let Some(es) = &self.early_stopping {
            trainer.add_callback(
                EarlyStopping::new(&es.monitor)
                    .patience(es.patience)
                    .min_delta(es.min_delta)
                    .warmup(es.warmup),
            )?;
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
        Ok(())
    }
}

impl JobConfig {
    /// Just the model this config describes, sized from `info` (what the train data looks
    /// like) and initialised from `init`; used to rebuild a trained model for prediction,
    /// evaluation and export. It builds the same model as [`JobConfig::build_trainer`].
    pub(crate) fn build_model(
        &self,
        info: &crate::data_loaders::DataInfo,
        init: &mut RngStream,
        device: &candle_core::Device,
    ) -> Result<Box<dyn Model>> {
        Ok(match &self.model {
            ModelConfig::Mlp(m) => Box::new(Mlp::new(
                MlpConfig {
                    inputs: info.sample_shape.iter().product(),
                    hidden: m.hidden.clone(),
                    outputs: info.num_classes.unwrap_or(1),
                    dropout: m.dropout as f32,
                },
                init,
                device,
            )?),
        })
    }
}
