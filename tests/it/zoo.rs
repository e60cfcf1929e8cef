//! The model zoo's image models (`Cnn`, `ResNet`) under the trainer: they learn, resume
//! bit-for-bit from a stop at every transition with their batch norm running statistics,
//! evaluate with those statistics, and no optimizer ever moves them.

use std::path::Path;

use candle_core::{Device, Tensor};
use deeptrain::data_loaders::csv_file::{parse_csv, CsvOptions, LabelColumn};
use deeptrain::data_loaders::InMemoryData;
use deeptrain::model::{Cnn, CnnArgs, ForwardCtx, ResNet, ResNetArgs};
use deeptrain::optim::named_vars;
use deeptrain::trainer::Every;
use deeptrain::{
    checkpoint, AdamConfig, AdamW, Model, Outcome, RngStream, Sgd, SgdConfig, StreamId,
    TrainOptimizer, Trainer,
};

use crate::autodata_train::check_resume_everywhere;
use crate::common::scratch;

/// The embedded digits (8x8, scaled to 0-1) from sample `from`, `n` of them, as samples
/// of `shape` (`[8, 8]`, `[1, 8, 8]` or `[64]`).
fn digits(from: usize, n: usize, shape: &[usize]) -> InMemoryData {
    let opts = CsvOptions {
        has_header: Some(false),
        label_column: LabelColumn::Last,
        delimiter: b',',
    };
    let (features, labels) = parse_csv(
        deeptrain::job::DIGITS_CSV_GZ,
        Path::new("digits.csv.gz"),
        opts,
    )
    .unwrap();
    let labels = labels.unwrap().to_u32_labels().unwrap();
    let mut pixels = Vec::new();
    features.range_f32(from, from + n, &mut pixels);
    pixels.iter_mut().for_each(|p| *p /= 16.0);
    let labels = labels[from..from + n].to_vec();
    InMemoryData::classification("digits", pixels, shape.to_vec(), labels, 10).unwrap()
}

/// A tiny CNN with batch norm and dropout on 8x8 digits.
fn small_cnn(init: &mut RngStream) -> Cnn {
    let args = CnnArgs {
        channels: vec![4, 8],
        batch_norm: true,
        hidden: vec![16],
        ..Default::default()
    };
    Cnn::new(args, &[8, 8], 10, init, &Device::Cpu).unwrap()
}

/// A tiny ResNet (two stages of one block: a projection shortcut) on 8x8 digits.
fn small_resnet(init: &mut RngStream) -> ResNet {
    let args = ResNetArgs {
        channels: vec![4, 8],
        blocks_per_stage: 1,
    };
    ResNet::new(args, &[1, 8, 8], 10, init, &Device::Cpu).unwrap()
}

/// 48 training digits in batches of 16 and 16 validation digits in batches of 8, 2
/// epochs, validation every epoch: 16 transitions. The optimizer is built over every
/// variable of the model, buffers included, with weight decay: the buffers must still
/// move only by the model's own updates.
fn trainer<M: Model + 'static>(
    run: &Path,
    shape: &[usize],
    model: fn(&mut RngStream) -> M,
    sgd: bool,
) -> Trainer {
    let mut init = RngStream::new(3, StreamId::Init);
    let model = model(&mut init);
    let opt: Box<dyn TrainOptimizer> = if sgd {
        let config = SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.01,
            ..Default::default()
        };
        Box::new(Sgd::from_varmap(model.varmap(), config))
    } else {
        let config = AdamConfig {
            lr: 1e-2,
            weight_decay: 0.1,
            ..Default::default()
        };
        Box::new(AdamW::from_varmap(model.varmap(), config))
    };
    Trainer::builder_boxed(Box::new(model), opt)
        .train_data(digits(0, 48, shape))
        .val_data(digits(48, 16, shape))
        .batch_size(16)
        .val_batch_size(8)
        .init_rng(init)
        .configure(|c| {
            c.epochs = 2;
            c.seed = 5;
            c.run_dir = run.to_path_buf();
            c.validate_every = Every::Epochs(1);
            c.checkpoint_every = Every::Never;
            c.report = false;
        })
        .build()
        .unwrap()
}

/// The model's buffers (running statistics) by name, as f32 bits.
fn buffer_bits(model: &dyn Model) -> Vec<(String, Vec<u32>)> {
    let vars = model.varmap().data().lock().unwrap();
    let mut out: Vec<(String, Vec<u32>)> = model
        .buffers()
        .into_iter()
        .map(|name| {
            let v = vars[&name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (name, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect();
    out.sort();
    out
}

/// Every transition's stop resumes to the uninterrupted run's state and tensors, running
/// statistics included; those moved away from their init, stayed apart from the
/// optimizer, and a loaded checkpoint restores them bitwise.
fn resumes_bitwise_with_running_statistics<M: Model + 'static>(
    name: &str,
    shape: &[usize],
    model: fn(&mut RngStream) -> M,
    sgd: bool,
) {
    let make = |run: &Path| trainer(run, shape, model, sgd);
    let reference = scratch(&format!("{name}-check"));
    let mut t = make(&reference);
    let at_init = buffer_bits(t.model());
    assert!(!at_init.is_empty());
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    assert_eq!((t.state.epoch, t.state.batches_fit), (2, 6));
    let loss = t.state.val_history.latest()["val_loss"];
    assert!(loss.is_finite(), "val_loss {loss}");
    let trained = buffer_bits(t.model());
    for ((n, a), (_, b)) in at_init.iter().zip(&trained) {
        assert_ne!(a, b, "{n} did not move in training");
    }
    // The checkpoint holds the running statistics as they are in the model.
    let saved = checkpoint::load_latest(&reference).unwrap();
    for (n, bits) in &trained {
        let v = saved.model[n].to_vec1::<f32>().unwrap();
        let v: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert_eq!(&v, bits, "{n} in the checkpoint");
    }

    let checkpoints = check_resume_everywhere(name, &make);
    assert_eq!(checkpoints.len(), 15);
    // A stop in the middle of the second epoch: a fresh model (init statistics) takes the
    // checkpoint's running statistics, bit for bit.
    let mid = &checkpoints[8];
    let ckpt = checkpoint::load(mid).unwrap();
    let mut fresh = make(&scratch(&format!("{name}-fresh")));
    assert_eq!(buffer_bits(fresh.model()), at_init);
    fresh.load_checkpoint(mid).unwrap();
    let restored = buffer_bits(fresh.model());
    for ((n, bits), (_, init)) in restored.iter().zip(&at_init) {
        let v = ckpt.model[n].to_vec1::<f32>().unwrap();
        let v: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert_eq!(&v, bits, "{n} restored from {}", mid.display());
        assert_ne!(bits, init, "{n} at the stop is still at init");
    }
}

#[test]
fn cnn_with_batch_norm_resumes_bitwise_from_every_transition() {
    resumes_bitwise_with_running_statistics("zoo-cnn", &[8, 8], small_cnn, false);
}

#[test]
fn resnet_resumes_bitwise_from_every_transition() {
    resumes_bitwise_with_running_statistics("zoo-resnet", &[1, 8, 8], small_resnet, true);
}

#[test]
fn a_cnn_with_batch_norm_learns_the_digits_and_evaluates_with_its_running_statistics() {
    let mut init = RngStream::new(1, StreamId::Init);
    let args = CnnArgs {
        channels: vec![8, 16],
        batch_norm: true,
        hidden: vec![32],
        ..Default::default()
    };
    let model = Cnn::new(args, &[64], 10, &mut init, &Device::Cpu).unwrap();
    let opt = AdamW::from_varmap(
        model.varmap(),
        AdamConfig {
            lr: 3e-3,
            ..Default::default()
        },
    );
    let (train, val) = digits(0, 1797, &[64]).split(0.2, 1).unwrap();
    let mut t = Trainer::builder(model, opt)
        .train_data(train)
        .val_data(val)
        .batch_size(32)
        .init_rng(init)
        .configure(|c| {
            c.epochs = 5;
            c.run_dir = scratch("zoo-cnn-learns");
            c.checkpoint_every = Every::Never;
            c.report = false;
        })
        .build()
        .unwrap();
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    let acc = t.state.val_history.latest()["val_accuracy"];
    assert!(acc > 0.85, "val accuracy {acc} after 5 epochs");
}

fn forward(model: &mut dyn Model, x: &Tensor, train: bool) -> Vec<f32> {
    let mut rng = RngStream::new(0, StreamId::Dropout);
    let mut ctx = ForwardCtx {
        train,
        dropout_rng: &mut rng,
    };
    let y = model.forward(x, &mut ctx).unwrap();
    y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Training normalises with the batch's statistics, evaluation with the running ones:
/// an evaluated sample gives the same output alone or in any batch, and evaluation
/// changes nothing.
#[test]
fn evaluation_uses_the_running_statistics() {
    let mut init = RngStream::new(2, StreamId::Init);
    let args = CnnArgs {
        channels: vec![4],
        batch_norm: true,
        dropout: 0.0,
        hidden: vec![],
        ..Default::default()
    };
    let cnn = Cnn::new(args, &[1, 8, 8], 10, &mut init, &Device::Cpu).unwrap();
    let resnet = small_resnet(&mut init);
    let models: [Box<dyn Model>; 2] = [Box::new(cnn), Box::new(resnet)];
    let data = digits(0, 8, &[64]);
    let x = Tensor::from_vec(data.features, (8, 1, 8, 8), &Device::Cpu).unwrap();
    let first = x.narrow(0, 0, 1).unwrap();
    let row = |v: &[f32]| v[..10].to_vec();
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-5);
    for mut m in models {
        let name = m.name();
        // Move the running statistics away from their init first.
        for _ in 0..3 {
            forward(m.as_mut(), &x, true);
        }
        let before = buffer_bits(m.as_ref());
        let eval = forward(m.as_mut(), &x, false);
        assert_eq!(
            bits(&forward(m.as_mut(), &x, false)),
            bits(&eval),
            "{name}: eval repeats"
        );
        let alone = forward(m.as_mut(), &first, false);
        assert!(
            close(&alone, &row(&eval)),
            "{name}: a sample evaluated alone: {alone:?} vs {:?}",
            row(&eval)
        );
        assert_eq!(
            buffer_bits(m.as_ref()),
            before,
            "{name}: eval moved buffers"
        );
        let train = forward(m.as_mut(), &x, true);
        assert!(!close(&train, &eval), "{name}: train and eval outputs");
        assert_ne!(
            buffer_bits(m.as_ref()),
            before,
            "{name}: train moved nothing"
        );
        // In training a sample's output depends on its batch.
        let pair = x.narrow(0, 0, 2).unwrap();
        let in_pair = forward(m.as_mut(), &pair, true);
        assert!(
            !close(&row(&in_pair), &row(&train)),
            "{name}: batch statistics"
        );
    }
}

/// Builds an optimizer over every variable of a model.
type MakeOptimizer = fn(&Cnn) -> Box<dyn TrainOptimizer>;

/// A step of every optimizer, given every variable (buffers included) and weight decay,
/// leaves the running statistics as the forward pass set them, and moves the weights.
#[test]
fn optimizers_leave_buffers_alone() {
    let make: [MakeOptimizer; 3] = [
        |m| {
            let c = AdamConfig {
                weight_decay: 0.5,
                ..Default::default()
            };
            Box::new(AdamW::from_varmap(m.varmap(), c))
        },
        |m| {
            let c = AdamConfig {
                weight_decay: 0.5,
                ..Default::default()
            };
            Box::new(deeptrain::Adam::from_varmap(m.varmap(), c))
        },
        |m| {
            let c = SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.5,
                ..Default::default()
            };
            Box::new(Sgd::from_varmap(m.varmap(), c))
        },
    ];
    let data = digits(0, 8, &[64]);
    let x = Tensor::from_vec(data.features, (8, 64), &Device::Cpu).unwrap();
    for make_opt in make {
        let mut init = RngStream::new(4, StreamId::Init);
        let mut m = small_cnn(&mut init);
        let mut opt = make_opt(&m);
        let names: Vec<String> = opt.vars().iter().map(|v| v.name.clone()).collect();
        assert!(names.contains(&"conv.0.bn.running_var".to_string()));
        let mut rng = RngStream::new(0, StreamId::Dropout);
        let mut ctx = ForwardCtx {
            train: true,
            dropout_rng: &mut rng,
        };
        let loss = m
            .forward(&x, &mut ctx)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let buffers = buffer_bits(&m);
        let weight = |m: &Cnn| {
            let vars = named_vars(m.varmap());
            let w = vars.iter().find(|v| v.name == "conv.0.weight").unwrap();
            w.var.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let w0 = weight(&m);
        for b in m.buffers() {
            let v = named_vars(m.varmap());
            let var = &v.iter().find(|v| v.name == b).unwrap().var;
            assert!(grads.get(var.as_tensor()).is_none(), "{b} has a gradient");
        }
        for _ in 0..3 {
            opt.step_scaled(&grads, 1.0).unwrap();
        }
        assert_eq!(buffer_bits(&m), buffers, "{}", opt.name());
        assert_ne!(weight(&m), w0, "{}: weights did not move", opt.name());
    }
}
