//! candle-datasets' vision sets (`candle_datasets::vision::Dataset`) as in-memory data:
//! how the `mnist`/`cifar10` sources read through candle-datasets, and for any such set.
//! Behind the `datasets` feature: candle-datasets brings hub, tokenizers and parquet.

use candle_core::DType;

use super::InMemoryData;
use crate::error::Result;

/// Train and test splits of a `candle_datasets::vision::Dataset`, in memory.
pub fn from_vision_dataset(
    name: &str,
    ds: &candle_datasets::vision::Dataset,
) -> Result<(InMemoryData, InMemoryData)> {
    let split = |images: &candle_core::Tensor, labels: &candle_core::Tensor, part: &str| {
        let sample_shape = images.dims()[1..].to_vec();
        let features = images
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let labels = labels.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        InMemoryData::classification(
            format!("{name}/{part}"),
            features,
            sample_shape,
            labels,
            ds.labels,
        )
    };
    Ok((
        split(&ds.train_images, &ds.train_labels, "train")?,
        split(&ds.test_images, &ds.test_labels, "test")?,
    ))
}
