//! Job config sections whose left-out keys come from somewhere else than the type's
//! `Default`: the `kind` of a tagged section (`{"optimizer": {"lr": 0.01}}` is AdamW), and
//! the `train` section, which sits over the default job's loop settings.
//!
//! serde has no default for an internally tagged enum's tag, and merging JSON values
//! before deserializing would lose the path of an error (`train.epochs` would be just
//! `train`, because the inner value no longer passes through `serde_path_to_error`). So
//! the given map is read as it is, through the caller's deserializer, and the missing
//! keys are appended at its end: every error about a key the user wrote keeps its path.

use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Deserializes `T` from a map; keys it lacks take their values from `defaults`.
pub(crate) fn with_defaults<'de, D, T>(
    deserializer: D,
    defaults: Map<String, Value>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_map(FillVisitor {
        defaults,
        target: PhantomData,
    })
}

struct FillVisitor<T> {
    defaults: Map<String, Value>,
    target: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for FillVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(FillMissing {
            given: Some(map),
            defaults: self.defaults,
            missing: None,
            value: None,
        }))
    }
}

/// The given entries, then those of `defaults` whose keys were not given.
struct FillMissing<A> {
    /// `None` once the given map is exhausted.
    given: Option<A>,
    /// Shrinks as keys are given.
    defaults: Map<String, Value>,
    /// What is left of `defaults` once the given map is exhausted.
    missing: Option<serde_json::map::IntoIter>,
    /// The value of the default key just handed out.
    value: Option<Value>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for FillMissing<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if let Some(given) = &mut self.given {
            // Read as a string so we know which defaults are overridden; a path-tracking
            // deserializer sees the key all the same.
            match given.next_key::<String>()? {
                Some(key) => {
                    self.defaults.remove(&key);
                    return seed
                        .deserialize(IntoDeserializer::<A::Error>::into_deserializer(key))
                        .map(Some);
                }
                None => {
                    self.given = None;
                    self.missing = Some(std::mem::take(&mut self.defaults).into_iter());
                }
            }
        }
        match self.missing.as_mut().and_then(Iterator::next) {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(IntoDeserializer::<A::Error>::into_deserializer(key))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match (&mut self.given, self.value.take()) {
            (Some(given), _) => given.next_value_seed(seed),
            (None, Some(value)) => seed.deserialize(value).map_err(de::Error::custom),
            (None, None) => Err(de::Error::custom(
                "a map value was asked for before its key",
            )),
        }
    }
}
