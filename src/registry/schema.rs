//! A component's arguments as `deeptrain list` prints them, read from the JSON schema of
//! its argument type (schemars) and from the type's `Default`.
//!
//! The schema gives names, types and doc comments; the defaults come from serializing
//! `A::default()`, which is what a left-out argument means (`#[serde(default)]`), so the
//! listing cannot drift from the code.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// One argument of a component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArgInfo {
    /// The JSON key.
    pub name: String,
    /// Its type, e.g. `integer`, `number`, `array of integer`, `"max" | "avg"`.
    pub kind: String,
    /// Its default, as JSON (`null` where there is none).
    pub default: Value,
    /// Its doc comment.
    pub doc: String,
}

/// The one-line description of `A` and its arguments, in declaration order.
pub fn describe<A: JsonSchema + Serialize + Default>() -> (String, Vec<ArgInfo>) {
    let schema = serde_json::to_value(schemars::schema_for!(A)).unwrap_or(Value::Null);
    let defaults = match serde_json::to_value(A::default()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let about = description(&schema);
    let args = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| ArgInfo {
                    name: name.clone(),
                    kind: type_of(prop, &defs),
                    default: defaults.get(name).cloned().unwrap_or(Value::Null),
                    doc: description(prop),
                })
                .collect()
        })
        .unwrap_or_default();
    (about, args)
}

/// The first paragraph of a schema's description, on one line.
fn description(schema: &Value) -> String {
    let text = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let first = text.split("\n\n").next().unwrap_or("");
    first.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A short type name for a property schema; `$ref`s are looked up in `defs`.
fn type_of(schema: &Value, defs: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return match defs.get(name) {
            Some(def) => type_of(def, defs),
            None => name.to_string(),
        };
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(c) = schema.get("const") {
        return c.to_string();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let kinds: Vec<String> = alts.iter().map(|a| type_of(a, defs)).collect();
            return kinds.join(" | ");
        }
    }
    let item = |s: &Value| match s.get("items") {
        Some(items) => format!("array of {}", type_of(items, defs)),
        None => "array".to_string(),
    };
    match schema.get("type") {
        Some(Value::String(t)) if t == "array" => item(schema),
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .map(|t| match t.as_str() {
                Some("array") => item(schema),
                Some(s) => s.to_string(),
                None => t.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A test component.
    ///
    /// More text that is not the summary.
    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    #[serde(default, rename_all = "snake_case")]
    struct Args {
        /// Widths, in order.
        hidden: Vec<usize>,
        /// The rate.
        lr: f64,
        /// Pooling.
        pool: Pool,
        /// Maybe a seed.
        seed: Option<u64>,
    }

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    enum Pool {
        Max,
        Avg,
    }

    impl Default for Args {
        fn default() -> Self {
            Self {
                hidden: vec![8, 4],
                lr: 0.5,
                pool: Pool::Max,
                seed: None,
            }
        }
    }

    #[test]
    fn lists_names_types_defaults_and_docs_in_order() {
        let (about, args) = describe::<Args>();
        assert_eq!(about, "A test component.");
        let rows: Vec<(&str, &str, String, &str)> = args
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.kind.as_str(),
                    a.default.to_string(),
                    a.doc.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "hidden",
                    "array of integer",
                    "[8,4]".into(),
                    "Widths, in order."
                ),
                ("lr", "number", "0.5".into(), "The rate."),
                ("pool", "\"max\" | \"avg\"", "\"max\"".into(), "Pooling."),
                ("seed", "integer | null", "null".into(), "Maybe a seed."),
            ]
        );
    }
}
