//! A trainer built in code: your model, optimizer and data, with callbacks.
//!
//! `cargo run --release --example custom_model` — stop it with Ctrl-C and run it again:
//! it resumes from its checkpoint and ends exactly where an uninterrupted run would.

use candle_core::Device;
use deeptrain::callbacks::EarlyStopping;
use deeptrain::data_loaders::InMemoryData;
use deeptrain::{
    AdamConfig, AdamW, Mlp, MlpConfig, Model, Outcome, RngStream, Stage, StreamId, Trainer,
};

fn main() -> deeptrain::Result<()> {
    // Two noisy interleaved spirals, generated from our own seeded stream.
    let mut rng = RngStream::new(1, StreamId::Init);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..2000u32 {
        let class = i % 2;
        let t = rng.uniform_f32() * 3.0 * std::f32::consts::PI;
        let r = t / 10.0;
        let sign = if class == 0 { 1.0 } else { -1.0 };
        x.push(sign * r * t.cos() + 0.05 * (rng.uniform_f32() - 0.5));
        x.push(sign * r * t.sin() + 0.05 * (rng.uniform_f32() - 0.5));
        y.push(class);
    }
    let data = InMemoryData::classification("spirals", x, vec![2], y, 2)?;
    let (train, val) = data.split(0.2, 1)?;

    let mut init = RngStream::new(7, StreamId::Init);
    let model = Mlp::new(
        MlpConfig {
            inputs: 2,
            hidden: vec![64, 64],
            outputs: 2,
            dropout: 0.0,
        },
        &mut init,
        &Device::Cpu,
    )?;
    let optimizer = AdamW::from_varmap(
        model.varmap(),
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let run_dir = std::env::temp_dir().join("deeptrain-custom-model");
    let mut trainer = Trainer::builder(model, optimizer)
        .train_data(train)
        .val_data(val)
        .epochs(30)
        .seed(7)
        .batch_size(64)
        .init_rng(init)
        .run_dir(&run_dir)
        .configure(|c| c.key_metric = "val_accuracy".into())
        .build()?;
    trainer.add_callback(EarlyStopping::new("val_loss").patience(5))?;
    trainer.on(Stage::ValEnd, |t| {
        let v = t.state.val_history.latest();
        println!(
            "epoch {:>2}  val_accuracy {:.4}",
            t.state.epoch, v["val_accuracy"]
        );
        Ok(())
    });
    if let Ok(dir) = trainer.load_checkpoint(&run_dir) {
        println!(
            "resumed from {} ({})",
            dir.display(),
            trainer.interrupt_status()
        );
    }
    match trainer.fit()? {
        Outcome::Finished => println!("finished"),
        Outcome::Stopped { stop, .. } => println!("stopped by {stop}"),
        Outcome::Interrupted { checkpoint } => {
            println!("interrupted; saved {}", checkpoint.display())
        }
    }
    print!("{}", trainer.info());
    Ok(())
}
