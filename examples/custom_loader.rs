//! A data loader written from scratch: it plans epochs and loads sets, nothing more.
//!
//! `cargo run --release --example custom_loader` fits an MLP to a function sampled by
//! the loader itself. Where the run stands in the epoch (which set is next, which are
//! done) is the trainer's cursor, `trainer.state.train_data`; the loader keeps no
//! position and draws its randomness only from the `LoaderState` it is handed, so a run
//! stopped anywhere resumes bit-for-bit.

use candle_core::{Device, Tensor};
use deeptrain::data_loaders::{Batch, DataInfo, DataLoader, LoaderState, SetRef};
use deeptrain::model::Task;
use deeptrain::rng::RngStream;
use deeptrain::{AdamConfig, AdamW, Mlp, MlpConfig, Model, Outcome, StreamId, Trainer};

/// `y = sin(3x) + x/2` on `[-2, 2]`, in `sets` sets of `batch_size` points each. Every
/// point is a pure function of its index, so the data is the same in every process.
struct Curve {
    points: usize,
}

impl Curve {
    fn point(i: usize) -> (f32, f32) {
        // A fixed, well-spread sequence of x values (golden-ratio stepping).
        let x = ((i as f64 * 0.618_033_988_75).fract() * 4.0 - 2.0) as f32;
        (x, (3.0 * x).sin() + x / 2.0)
    }
}

impl DataLoader for Curve {
    fn info(&self) -> DataInfo {
        DataInfo {
            format: "generated".into(),
            files: Vec::new(),
            num_samples: self.points,
            sample_shape: vec![1],
            dtype: "f32".into(),
            num_classes: None,
            class_counts: None,
        }
    }

    /// Sets are batch-sized slices of the points; shuffling permutes the sets, drawing
    /// from the loader's own stream in `state.rng` (saved in every checkpoint).
    fn plan_epoch(&self, _epoch: u64, state: &mut LoaderState) -> deeptrain::Result<Vec<String>> {
        let sets = self.points.div_ceil(state.batch_size);
        let mut order: Vec<u32> = (0..sets as u32).collect();
        if state.shuffle {
            let mut rng = RngStream::from_state(&state.rng);
            rng.shuffle(&mut order);
            state.rng = rng.state();
        }
        Ok(order.iter().map(|i| i.to_string()).collect())
    }

    fn load(
        &self,
        state: &LoaderState,
        set: SetRef<'_>,
        device: &Device,
    ) -> deeptrain::Result<Batch> {
        let i: usize = set
            .name
            .parse()
            .map_err(|_| deeptrain::Error::Data(format!("curve: no set named {:?}", set.name)))?;
        let start = i * state.batch_size;
        let end = (start + state.batch_size).min(self.points);
        let (xs, ys): (Vec<f32>, Vec<f32>) = (start..end).map(Curve::point).unzip();
        let n = xs.len();
        Ok(Batch::new(
            set.name,
            Tensor::from_vec(xs, (n, 1), device)?,
            Tensor::from_vec(ys, n, device)?,
        ))
    }
}

fn main() -> deeptrain::Result<()> {
    let mut init = RngStream::new(3, StreamId::Init);
    let config = MlpConfig {
        inputs: 1,
        hidden: vec![64, 64],
        outputs: 1,
        dropout: 0.0,
    };
    let model = Mlp::new(config, &mut init, &Device::Cpu)?;
    let optimizer = AdamW::from_varmap(
        model.varmap(),
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let run_dir = std::env::temp_dir().join("deeptrain-custom-loader");
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut trainer = Trainer::builder(model, optimizer)
        .train_data(Curve { points: 2048 })
        .val_data(Curve { points: 256 })
        .task(Task::Regression)
        .batch_size(64)
        .epochs(40)
        .seed(3)
        .init_rng(init)
        .run_dir(&run_dir)
        .configure(|c| c.validate_every = deeptrain::trainer::Every::Epochs(10))
        .build()?;
    // The cursor is plain data in the state: here, the plan of the first epoch.
    trainer.on(deeptrain::Stage::TrainEpochBegin, |v| {
        if v.state.epoch == 0 {
            println!(
                "epoch 1 plan: {:?}...",
                &v.state.train_data.sets_to_process[..4]
            );
        }
        Ok(())
    });
    assert_eq!(trainer.fit()?, Outcome::Finished);
    let mse = trainer.state.val_history.latest()["val_mse"];
    println!("val_mse after {} epochs: {mse:.5}", trainer.state.epoch);
    Ok(())
}
