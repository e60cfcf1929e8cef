//! Forecasting yearly sunspot activity with a stateful LSTM.
//!
//! The series (1700-2008, `../shared/data/timeseries/sunspots.csv`, or a path given as the
//! first argument) is normalised and cut into sequences of 48 years; the target of every
//! year is the next year's value. AutoData serves sets of 6 sequences and
//! `TimeseriesWindows` cuts each set into windows of 12 years; the LSTM carries its state
//! from window to window and forgets it after the last window of a set. Start offsets
//! cycle (0, 6) from epoch to epoch so window boundaries move.
//!
//! ```text
//! cargo run --release --example sunspots
//! ```

use std::path::PathBuf;

use candle_core::Device;
use deeptrain::data_loaders::csv_file::{read_csv, CsvOptions, LabelColumn};
use deeptrain::data_loaders::npy::write_npy;
use deeptrain::data_loaders::{array::DType, AutoData, TimeseriesWindows};
use deeptrain::model::recurrent::Cell;
use deeptrain::trainer::Every;
use deeptrain::{
    AdamConfig, AdamW, Model, Outcome, Recurrent, RecurrentConfig, RngStream, Stage, StreamId,
    Task, Trainer,
};

const SEQ: usize = 48;
const WINDOW: usize = 12;
const TRAIN_YEARS: usize = 259; // 1700-1958; 1959-2008 is held out

fn main() -> deeptrain::Result<()> {
    let csv = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/timeseries/sunspots.csv")
        });
    let (table, _) = read_csv(
        &csv,
        CsvOptions {
            label_column: LabelColumn::None,
            ..CsvOptions::default()
        },
    )?;
    let mut values = Vec::new();
    table.range_f32(0, table.num_samples(), &mut values);
    // Columns YEAR, SUNACTIVITY.
    let series: Vec<f32> = values.chunks(2).map(|r| r[1]).collect();
    let train_part = &series[..TRAIN_YEARS];
    let mean = train_part.iter().sum::<f32>() / train_part.len() as f32;
    let std = (train_part.iter().map(|v| (v - mean).powi(2)).sum::<f32>()
        / train_part.len() as f32)
        .sqrt();
    let s: Vec<f32> = series.iter().map(|v| (v - mean) / std).collect();
    println!(
        "{} years of sunspot activity; training on {}-{}, validating up to {}",
        s.len(),
        1700,
        1700 + TRAIN_YEARS - 1,
        1700 + s.len() - 1
    );

    // Sequences (x = years t..t+48, y = years t+1..t+49) written as .npy sets.
    let root = std::env::temp_dir().join(format!("deeptrain-sunspots-{}", std::process::id()));
    let write = |name: &str, offsets: &[usize]| -> deeptrain::Result<PathBuf> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| deeptrain::Error::io(&dir, e))?;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for &o in offsets {
            x.extend_from_slice(&s[o..o + SEQ]);
            y.extend_from_slice(&s[o + 1..o + SEQ + 1]);
        }
        let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|f| f.to_le_bytes()).collect() };
        let shape = [offsets.len(), SEQ, 1];
        write_npy(dir.join("series.npy"), DType::F32, &shape, &bytes(&x))?;
        write_npy(dir.join("labels.npy"), DType::F32, &shape, &bytes(&y))?;
        Ok(dir)
    };
    let train_offsets: Vec<usize> = (0..=TRAIN_YEARS - SEQ - 1).step_by(6).collect();
    let val_offsets = [s.len() - SEQ - 25, s.len() - SEQ - 13, s.len() - SEQ - 1];
    let train_dir = write("train", &train_offsets)?;
    let val_dir = write("val", &val_offsets)?;

    let train = AutoData::from_dir(&train_dir)?
        .batch_size(6)
        .shuffle(true)
        .preprocessor(TimeseriesWindows::new(WINDOW, WINDOW).start_increments(vec![0, 6]))
        .build()?;
    let val = AutoData::from_dir(&val_dir)?
        .batch_size(3)
        .preprocessor(TimeseriesWindows::new(WINDOW, WINDOW))
        .build()?;
    println!(
        "train: {} sequences of {SEQ} years in sets of 6; val: {} sequences",
        train.inferred().num_samples,
        val.inferred().num_samples
    );

    let mut init = RngStream::new(42, StreamId::Init);
    let model = Recurrent::new(
        RecurrentConfig {
            cell: Cell::Lstm,
            inputs: 1,
            hidden: 24,
            outputs: 1,
            per_step: true,
        },
        &mut init,
        &Device::Cpu,
    )?;
    let optimizer = AdamW::from_varmap(
        model.varmap(),
        AdamConfig {
            lr: 1e-2,
            weight_decay: 0.0,
            ..AdamConfig::default()
        },
    );
    let epochs = 40;
    let mut trainer = Trainer::builder(model, optimizer)
        .train_data(train)
        .val_data(val)
        .task(Task::Regression)
        .init_rng(init)
        .configure(|c| {
            c.epochs = epochs;
            c.seed = 42;
            c.run_dir = root.join("run");
            c.validate_every = Every::Epochs(1);
            c.checkpoint_every = Every::Never;
            c.key_metric = "val_loss".into();
        })
        .build()?;
    trainer.on(Stage::ValEnd, move |v| {
        let s = v.state;
        if s.epoch % 5 == 0 {
            println!(
                "epoch {:>2}/{epochs}  windows fit {:>4}  train mse {:.4}  val mse {:.4}",
                s.epoch,
                s.global_step,
                s.train_history.latest()["loss"],
                s.val_history.latest()["val_loss"],
            );
        }
        Ok(())
    });
    let started = std::time::Instant::now();
    let outcome = trainer.fit()?;
    assert_eq!(outcome, Outcome::Finished);

    // Persistence baseline (next year = this year) on the same validation targets.
    let mut se = 0.0;
    let mut n = 0;
    for &o in &val_offsets {
        for t in o..o + SEQ {
            se += (s[t + 1] - s[t]).powi(2);
            n += 1;
        }
    }
    let best = trainer.state.best.clone();
    println!(
        "done in {:.1} s; best val mse {:.4} at epoch {} (persistence baseline {:.4}), normalised units (std {:.1})",
        started.elapsed().as_secs_f64(),
        best.as_ref().map(|b| b.value).unwrap_or(f64::NAN),
        best.as_ref().map(|b| b.epoch).unwrap_or(0),
        se / n as f32,
        std
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
