//! `label_map`: class ids renumbered or merged (one class against the rest, coarse
//! classes, 1-based labels to 0-based) without rewriting the data, on every batch.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::base::{arg_error, ApplyCtx, BatchSpec, Transform};
use crate::error::{Error, Result};

/// Replaces class ids: each listed class by its new id, every other class by `other`
/// (or itself); on every batch, validation and evaluation included. The model gets as
/// many outputs as the largest new id + 1; a model's predicted classes are the new ids.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LabelMapArgs {
    /// Class id (as a string, JSON keys are) to its new id, e.g. `{"3": 1}`.
    pub map: BTreeMap<String, u32>,
    /// The new id of every class not in `map` (default `null`: such classes keep theirs).
    pub other: Option<u32>,
}

impl LabelMapArgs {
    /// Checks that `map` is not empty and every key is a class id.
    pub fn validate(&self) -> Result<()> {
        self.pairs().map(drop)
    }

    /// `map` with its keys read as class ids.
    fn pairs(&self) -> Result<BTreeMap<u32, u32>> {
        if self.map.is_empty() {
            return Err(arg_error(
                "label_map",
                "map",
                "is empty: give class ids and their new ids, e.g. {\"3\": 1}",
            ));
        }
        self.map
            .iter()
            .map(|(k, &v)| match k.trim().parse::<u32>() {
                Ok(class) => Ok((class, v)),
                Err(_) => Err(arg_error(
                    "label_map",
                    &format!("map.{k}"),
                    format!("`{k}` is not a class id (an integer >= 0)"),
                )),
            })
            .collect()
    }
}

/// The `label_map` transform; see [`LabelMapArgs`].
#[derive(Debug, Clone)]
pub struct LabelMap {
    map: BTreeMap<u32, u32>,
    other: Option<u32>,
}

impl LabelMap {
    /// A map of class ids for data of `num_classes` classes (`None`: the labels are values,
    /// which is an error); a listed class the data lacks is an error naming it.
    pub fn new(args: LabelMapArgs, num_classes: Option<usize>) -> Result<Self> {
        let map = args.pairs()?;
        let Some(classes) = num_classes else {
            return Err(arg_error(
                "label_map",
                "map",
                "needs class ids as labels; the data's labels are values",
            ));
        };
        if let Some((&class, _)) = map.iter().find(|(&c, _)| c as usize >= classes) {
            return Err(arg_error(
                "label_map",
                &format!("map.{class}"),
                format!("the data has classes 0 to {}", classes.saturating_sub(1)),
            ));
        }
        Ok(Self {
            map,
            other: args.other,
        })
    }

    /// The new id of class `class`.
    pub fn new_id(&self, class: u32) -> u32 {
        match self.map.get(&class) {
            Some(&c) => c,
            None => self.other.unwrap_or(class),
        }
    }
}

impl Transform for LabelMap {
    fn name(&self) -> &str {
        "label_map"
    }

    fn is_random(&self) -> bool {
        false
    }

    fn output(&self, input: &BatchSpec) -> Result<BatchSpec> {
        let Some(classes) = input.num_classes else {
            return Err(arg_error(
                self.name(),
                "map",
                "needs class ids as labels; the labels are values",
            ));
        };
        let ids: Vec<u32> = (0..classes as u32).map(|c| self.new_id(c)).collect();
        let num_classes = ids.iter().max().map_or(0, |&m| m as usize + 1);
        let class_counts = input.class_counts.as_ref().map(|counts| {
            let mut out = vec![0; num_classes];
            for (&id, &n) in ids.iter().zip(counts) {
                out[id as usize] += n;
            }
            out
        });
        Ok(BatchSpec {
            num_classes: Some(num_classes),
            class_counts,
            ..input.clone()
        })
    }

    /// The labels are mapped on the host: a batch's labels are a few hundred integers, and
    /// a lookup there takes any id, also one beyond the train data's classes.
    fn apply(
        &self,
        x: Tensor,
        y: Option<Tensor>,
        _ctx: &mut ApplyCtx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let Some(y) = y else {
            return Ok((x, None));
        };
        if y.dtype().is_float() {
            return Err(Error::Data(format!(
                "transform `label_map`: labels of type {:?} are not class ids",
                y.dtype()
            )));
        }
        let ids = y.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let mapped: Vec<u32> = ids.iter().map(|&c| self.new_id(c)).collect();
        let y = Tensor::from_vec(mapped, y.shape(), y.device())?.to_dtype(y.dtype())?;
        Ok((x, Some(y)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{RngStream, StreamId};
    use candle_core::Device;

    fn label_map(pairs: &[(&str, u32)], other: Option<u32>, classes: usize) -> Result<LabelMap> {
        let args = LabelMapArgs {
            map: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            other,
        };
        args.validate()?;
        LabelMap::new(args, Some(classes))
    }

    fn apply(t: &LabelMap, y: Tensor) -> Tensor {
        let mut rng = RngStream::new(1, StreamId::Augment);
        let mut ctx = ApplyCtx {
            train: true,
            rng: &mut rng,
        };
        let x = Tensor::zeros(y.dim(0).unwrap(), DType::F32, &Device::Cpu).unwrap();
        t.apply(x, Some(y), &mut ctx).unwrap().1.unwrap()
    }

    #[test]
    fn listed_classes_get_their_new_ids_others_other_or_their_own() {
        let y = Tensor::new(&[0u32, 3, 5, 3, 9], &Device::Cpu).unwrap();
        // One against the rest.
        let t = label_map(&[("3", 1)], Some(0), 10).unwrap();
        assert_eq!(
            apply(&t, y.clone()).to_vec1::<u32>().unwrap(),
            [0, 1, 0, 1, 0]
        );
        // Renumbering, the rest kept.
        let t = label_map(&[("3", 5), ("5", 3)], None, 10).unwrap();
        assert_eq!(
            apply(&t, y.clone()).to_vec1::<u32>().unwrap(),
            [0, 5, 3, 5, 9]
        );
        // The labels' dtype is kept.
        let y64 = y.to_dtype(DType::I64).unwrap();
        let out = apply(&t, y64);
        assert_eq!(out.dtype(), DType::I64);
        assert_eq!(out.to_vec1::<i64>().unwrap(), [0, 5, 3, 5, 9]);
    }

    #[test]
    fn the_classes_and_their_counts_follow_the_map() {
        let t = label_map(&[("0", 0), ("1", 0), ("2", 1)], Some(2), 5).unwrap();
        let spec = BatchSpec {
            sample_shape: vec![4],
            num_classes: Some(5),
            class_counts: Some(vec![1, 2, 3, 4, 5]),
        };
        let out = t.output(&spec).unwrap();
        assert_eq!(out.num_classes, Some(3));
        assert_eq!(out.class_counts, Some(vec![3, 3, 9]));
        assert_eq!(out.sample_shape, [4]);
        // 1-based labels to 0-based: class 0 never occurs, 1..=3 become 0..=2.
        let t = label_map(&[("1", 0), ("2", 1), ("3", 2)], Some(0), 4).unwrap();
        let spec = BatchSpec {
            num_classes: Some(4),
            ..spec
        };
        assert_eq!(t.output(&spec).unwrap().num_classes, Some(3));
    }

    #[test]
    fn wrong_arguments_name_the_transform_and_the_argument() {
        let cases: [(&[(&str, u32)], &str); 3] = [
            (&[], "argument `map`: is empty"),
            (
                &[("three", 1)],
                "argument `map.three`: `three` is not a class id",
            ),
            (
                &[("12", 1)],
                "argument `map.12`: the data has classes 0 to 9",
            ),
        ];
        for (pairs, want) in cases {
            let e = label_map(pairs, None, 10).err().unwrap().to_string();
            assert!(e.contains("`label_map`: ") && e.contains(want), "{e}");
        }
        let args = LabelMapArgs {
            map: [("1".to_string(), 0)].into(),
            other: None,
        };
        let e = LabelMap::new(args, None).err().unwrap().to_string();
        assert!(
            e.contains("`label_map`: argument `map`: needs class ids"),
            "{e}"
        );
    }
}
