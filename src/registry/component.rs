//! A component chosen by name in a job config: `{"name": "cnn", "channels": [32, 64]}`.
//!
//! The config layer keeps the arguments as JSON; which type they are read into is the
//! registered component's business (see [`Registry`](super::Registry)), so a user's
//! component and a built-in one look the same in a job file. The older spelling
//! `{"kind": "mlp", ...}` of runs made before the registry is read as `name`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A component's name and its arguments, as a job config gives them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Component {
    /// The registered name (`"mlp"`, `"cross_entropy"`, a user's `"my_unet"`); empty when
    /// the config left it out (the job's default for that slot applies).
    pub name: String,
    /// The arguments, every key but `name`; the component's argument type reads them.
    pub args: Map<String, Value>,
}

impl Component {
    /// A component with no arguments (every argument takes its default).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            args: Map::new(),
        }
    }

    /// A component with typed arguments (e.g. `Component::with_args("mlp", MlpArgs {..})`).
    /// Arguments that do not serialize to a JSON object are an error naming the component.
    pub fn with_args(name: impl Into<String>, args: impl Serialize) -> crate::error::Result<Self> {
        let name = name.into();
        match serde_json::to_value(args) {
            Ok(Value::Object(args)) => Ok(Self { name, args }),
            Ok(other) => Err(crate::error::Error::config(
                &name,
                format!("arguments must be a JSON object, not {other}"),
            )),
            Err(e) => Err(crate::error::Error::config(&name, e.to_string())),
        }
    }

    /// Sets one argument (`lr`, `hidden`, ...).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.args.insert(key.to_string(), value.into());
        self
    }

    /// One argument as a number, if it is one.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.args.get(key).and_then(Value::as_f64)
    }
}

impl Serialize for Component {
    /// `name` first, then the arguments in key order.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.args.len() + 1))?;
        map.serialize_entry("name", &self.name)?;
        for (k, v) in &self.args {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Component {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let mut args = match value {
            Value::Object(map) => map,
            // `"model": "cnn"`: a name alone.
            Value::String(name) => return Ok(Component::named(name)),
            other => {
                return Err(D::Error::custom(format!(
                    "expected {{\"name\": ..., arguments...}} or a name, found {other}"
                )))
            }
        };
        let name = match (args.remove("name"), args.remove("kind")) {
            (Some(_), Some(_)) => {
                return Err(D::Error::custom(
                    "give `name` (or the older `kind`), not both",
                ))
            }
            (Some(Value::String(n)), None) | (None, Some(Value::String(n))) => n,
            (Some(other), None) | (None, Some(other)) => {
                return Err(D::Error::custom(format!(
                    "`name` must be a string, not {other}"
                )))
            }
            (None, None) => String::new(),
        };
        Ok(Component { name, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_kind_and_a_bare_name() {
        let c: Component = serde_json::from_str(r#"{"name": "cnn", "channels": [8]}"#).unwrap();
        assert_eq!(c.name, "cnn");
        assert_eq!(c.args["channels"], serde_json::json!([8]));
        let old: Component = serde_json::from_str(r#"{"kind": "mlp", "hidden": [4]}"#).unwrap();
        assert_eq!(old.name, "mlp");
        assert_eq!(old.args.len(), 1);
        let bare: Component = serde_json::from_str(r#""sgd""#).unwrap();
        assert_eq!(bare, Component::named("sgd"));
        let none: Component = serde_json::from_str("{}").unwrap();
        assert_eq!(none.name, "");
        let both = serde_json::from_str::<Component>(r#"{"kind": "a", "name": "b"}"#);
        assert!(both.unwrap_err().to_string().contains("not both"));
        let number = serde_json::from_str::<Component>(r#"{"name": 3}"#);
        assert!(number.unwrap_err().to_string().contains("must be a string"));
    }

    #[test]
    fn writes_name_then_arguments_and_reads_back() {
        let mut c = Component::named("adamw");
        c.set("lr", 0.01);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"name":"adamw","lr":0.01}"#);
        assert_eq!(serde_json::from_str::<Component>(&text).unwrap(), c);
        assert_eq!(c.number("lr"), Some(0.01));
    }
}
