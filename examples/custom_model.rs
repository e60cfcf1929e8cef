//! Your own model, made of candle-nn layers, trained and resumed by deeptrain.
//!
//! `cargo run --release --example custom_model` trains a small CNN on the embedded
//! digits. Stop it with Ctrl-C and run it again: it resumes from its checkpoint and ends
//! bit-for-bit where an uninterrupted run would. Delete the run directory it prints to
//! start over.
//!
//! Two things make that work for a model of your own:
//! - its layers take their initial weights from `seeded_var_builder`, the run's own
//!   seeded stream (candle's RNG cannot be seeded), so every process builds the same model;
//! - its random draws in `forward` (dropout here) come from `ctx.dropout_rng`, whose
//!   position every checkpoint saves.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarMap};
use deeptrain::callbacks::EarlyStopping;
use deeptrain::data_loaders::csv_file::{parse_csv, CsvOptions, LabelColumn};
use deeptrain::data_loaders::InMemoryData;
use deeptrain::model::{dropout, seeded_var_builder, ForwardCtx};
use deeptrain::{AdamConfig, AdamW, Model, Outcome, RngStream, Stage, StreamId, Trainer};

/// Two 3x3 convolutions with max pooling, then a linear classifier, on 8x8 images.
struct SmallCnn {
    varmap: VarMap,
    conv1: Conv2d,
    conv2: Conv2d,
    fc: Linear,
}

impl SmallCnn {
    fn new(seed: u64, device: &Device) -> deeptrain::Result<Self> {
        let varmap = VarMap::new();
        let init = RngStream::new(seed, StreamId::Init);
        let vb = seeded_var_builder(&varmap, init, DType::F32, device);
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        Ok(Self {
            conv1: candle_nn::conv2d(1, 16, 3, same, vb.pp("conv1"))?,
            conv2: candle_nn::conv2d(16, 32, 3, same, vb.pp("conv2"))?,
            fc: candle_nn::linear(32 * 2 * 2, 10, vb.pp("fc"))?,
            varmap,
        })
    }
}

impl Model for SmallCnn {
    fn name(&self) -> String {
        "small-cnn 16-32".into()
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardCtx) -> deeptrain::Result<Tensor> {
        let x = x.reshape((x.dim(0)?, 1, 8, 8))?;
        let x = self.conv1.forward(&x)?.relu()?.max_pool2d(2)?; // 16 x 4 x 4
        let x = self.conv2.forward(&x)?.relu()?.max_pool2d(2)?; // 32 x 2 x 2
        let x = dropout(&x.flatten_from(1)?, 0.25, ctx)?;
        Ok(self.fc.forward(&x)?)
    }
}

/// The embedded UCI digits (1797 images of 8x8 pixels, 0-16), scaled to 0-1.
fn digits() -> deeptrain::Result<InMemoryData> {
    let opts = CsvOptions {
        has_header: Some(false),
        label_column: LabelColumn::Last,
        delimiter: b',',
    };
    let origin = std::path::Path::new("assets/digits.csv.gz");
    let (features, labels) = parse_csv(deeptrain::job::DIGITS_CSV_GZ, origin, opts)?;
    let labels = labels.expect("digits have labels").to_u32_labels()?;
    let mut pixels = Vec::new();
    features.range_f32(0, features.num_samples(), &mut pixels);
    pixels.iter_mut().for_each(|p| *p /= 16.0);
    InMemoryData::classification("digits", pixels, vec![64], labels, 10)
}

fn main() -> deeptrain::Result<()> {
    let device = Device::Cpu;
    let (train, val) = digits()?.split(0.2, 1)?;
    let model = SmallCnn::new(7, &device)?;
    let optimizer = AdamW::from_varmap(
        model.varmap(),
        AdamConfig {
            lr: 3e-3,
            ..Default::default()
        },
    );
    let run_dir = std::env::temp_dir().join("deeptrain-custom-model");
    let mut builder = Trainer::builder(model, optimizer)
        .train_data(train)
        .val_data(val)
        .epochs(15)
        .seed(7)
        .batch_size(32)
        .device(device)
        .run_dir(&run_dir)
        .configure(|c| c.key_metric = "val_accuracy".into())
        // Ctrl-C / SIGTERM finish the current batch, save and return `Interrupted`.
        .interrupt_handle(deeptrain::interrupt::install_signal_handler(|_| {})?);
    if !deeptrain::checkpoint::list(&run_dir)?.is_empty() {
        println!("resuming {}", run_dir.display());
        builder = builder.resume_from(&run_dir);
    }
    let mut trainer = builder.build()?;
    trainer.add_callback(EarlyStopping::new("val_loss").patience(5))?;
    trainer.on(Stage::ValEnd, |t| {
        let v = t.state.val_history.latest();
        println!(
            "epoch {:>2}  val_loss {:.4}  val_accuracy {:.4}",
            t.state.epoch, v["val_loss"], v["val_accuracy"]
        );
        Ok(())
    });
    match trainer.fit()? {
        Outcome::Finished => println!("finished"),
        Outcome::Interrupted { checkpoint } => {
            println!(
                "interrupted; saved {}: run again to resume",
                checkpoint.display()
            )
        }
        Outcome::Stopped { stop, .. } => println!("stopped by {stop}"),
    }
    println!("run directory: {}", run_dir.display());
    Ok(())
}
