//! The built-in data sources (`series`, `mnist`, `fashion_mnist`, `cifar10`); their
//! argument types live beside their readers in [`crate::data_loaders`] (`series`,
//! `vision_sets`, which also picks the reader: its own, or candle-datasets' with the
//! `datasets` feature).

use std::sync::Arc;

use crate::data_loaders::series::{Series, SeriesArgs, SeriesPart, SeriesTarget};
use crate::data_loaders::vision_sets::{read_cifar10, read_mnist, Cifar10Args, MnistArgs};
use crate::data_loaders::{AutoData, DataLoader};
use crate::error::{Error, Result};
use crate::registry::{Registry, SourceCtx, SourceData};

/// The built-in sources.
pub(super) fn register(r: &mut Registry) {
    r.source_checked("series", SeriesArgs::validate, series);
    r.source_checked("mnist", MnistArgs::validate, |a: MnistArgs, ctx| {
        let (train, val) = read_mnist("mnist", &a, ctx.scale)?;
        Ok(in_memory(train, val))
    });
    // The same files, names and layout as MNIST: the same source under its own name.
    r.source_checked(
        "fashion_mnist",
        |a: &MnistArgs| a.validate_as("fashion_mnist"),
        |a: MnistArgs, ctx| {
            let (train, val) = read_mnist("fashion_mnist", &a, ctx.scale)?;
            Ok(in_memory(train, val))
        },
    );
    r.source_checked("cifar10", Cifar10Args::validate, |a: Cifar10Args, ctx| {
        let (train, val) = read_cifar10(&a, ctx.scale)?;
        Ok(in_memory(train, val))
    });
}

/// Train and test parts held in memory (batched by the trainer's settings).
fn in_memory(
    train: crate::data_loaders::InMemoryData,
    val: crate::data_loaders::InMemoryData,
) -> SourceData {
    SourceData {
        train: Box::new(train),
        val: Some(Box::new(val)),
    }
}

/// The `series` source: both parts' sequences through AutoData, so `data.windows` cuts
/// them as it cuts any file's sequences.
fn series(a: SeriesArgs, ctx: &SourceCtx) -> Result<SourceData> {
    if ctx.scale != 1.0 {
        return Err(Error::config(
            "data.scale",
            format!(
                "{} with the `series` source: it normalises the series itself (its \
                 `normalize` argument)",
                ctx.scale
            ),
        ));
    }
    let series = Arc::new(Series::read(&a)?);
    log::info!("{}", series.describe());
    let target = a.target.unwrap_or(if ctx.windows.is_some() {
        SeriesTarget::Steps
    } else {
        SeriesTarget::Last
    });
    let loader = |part: SeriesPart, batch: usize, shuffle: bool| -> Result<Box<dyn DataLoader>> {
        // A format name of its own, so AutoData hands the file to the series' loader.
        let mut b = AutoData::from_file(&series.path)?
            .format("series")
            .loader("series", series.loader(part, target))
            .batch_size(batch)
            .shuffle(shuffle)
            .drop_last(ctx.drop_last)
            .preload(ctx.preload)
            .seed(ctx.seed);
        if let Some(w) = &ctx.windows {
            // Validation windows always start at the sequence's start, so every
            // validation measures the same steps (train starts cycle, as configured).
            let w = match part {
                SeriesPart::Train => w.clone(),
                SeriesPart::Val => w.clone().start_increments(vec![0]),
            };
            b = b.preprocessor(w);
        }
        Ok(Box::new(b.build()?))
    };
    Ok(SourceData {
        train: loader(SeriesPart::Train, ctx.batch_size, ctx.shuffle)?,
        val: Some(loader(SeriesPart::Val, ctx.val_batch_size, false)?),
    })
}
