//! A model's layers as a table: name, output shape, parameter count, trainable or
//! frozen. Used by `deeptrain summary` and `deeptrain inspect`.

use std::collections::BTreeMap;

use candle_nn::VarMap;
use serde::Serialize;

use super::Model;

/// One layer of a model: the variables sharing a name prefix (`layers.0.weight` and
/// `layers.0.bias` are layer `layers.0`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSummary {
    /// The layer's name: its variables' common prefix (before the last `.`).
    pub name: String,
    /// The layer's output shape for one sample (`[128]`), when the model knows it.
    pub output_shape: Option<Vec<usize>>,
    /// The layer's variables with their shapes, in name order.
    pub variables: Vec<(String, Vec<usize>)>,
}

impl LayerSummary {
    /// Number of scalar parameters of the layer.
    pub fn params(&self) -> usize {
        self.variables
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// The layer of a variable: its name up to the last `.` (the whole name when it has none).
pub fn layer_of(variable: &str) -> &str {
    variable.rsplit_once('.').map_or(variable, |(l, _)| l)
}

/// Groups named variable shapes into layers by [`layer_of`], with unknown output shapes;
/// layers are ordered by name with numbers compared as numbers (`layers.2` before
/// `layers.10`).
pub fn group_layers(
    variables: impl IntoIterator<Item = (String, Vec<usize>)>,
) -> Vec<LayerSummary> {
    let mut groups: BTreeMap<Vec<NameChunk>, LayerSummary> = BTreeMap::new();
    for (name, shape) in variables {
        let layer = layer_of(&name).to_string();
        groups
            .entry(natural_key(&layer))
            .or_insert_with(|| LayerSummary {
                name: layer,
                output_shape: None,
                variables: Vec::new(),
            })
            .variables
            .push((name, shape));
    }
    groups
        .into_values()
        .map(|mut l| {
            l.variables.sort_by_key(|v| natural_key(&v.0));
            l
        })
        .collect()
}

/// The float variables of a var map grouped into layers (see [`group_layers`]).
pub fn layers_of_varmap(varmap: &VarMap) -> Vec<LayerSummary> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    group_layers(
        data.iter()
            .filter(|(_, v)| v.dtype().is_float())
            .map(|(n, v)| (n.clone(), v.dims().to_vec())),
    )
}

/// A piece of a name for ordering: text, or a number compared by value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NameChunk {
    Number(u64),
    Text(String),
}

/// `layers.10` as `["layers.", 10]`, so names sort the way people number layers. Four
/// lines, so no natural-sort crate.
fn natural_key(name: &str) -> Vec<NameChunk> {
    let mut key = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (chunk, tail) = if digits > 0 {
            let (d, t) = rest.split_at(digits);
            (
                d.parse()
                    .map_or_else(|_| NameChunk::Text(d.into()), NameChunk::Number),
                t,
            )
        } else {
            let text = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (s, t) = rest.split_at(text);
            (NameChunk::Text(s.into()), t)
        };
        key.push(chunk);
        rest = tail;
    }
    key
}

/// A shape as `[128, 64]`.
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// The layers of `model` as a text table; `frozen` names the variables the optimizer
/// leaves alone. One row per layer (name, output shape per sample or `?`, parameters,
/// `yes`/`no`/`partly` trainable, variable shapes), then the total. The model's
/// [buffers](Model::buffers) are never trainable and count with the frozen variables.
pub fn summary_table(model: &dyn Model, frozen: &[String]) -> String {
    let mut not_trained = frozen.to_vec();
    not_trained.extend(model.buffers());
    render_layer_table(&model.layers(), &not_trained)
}

/// [`summary_table`] over layers already listed.
pub fn render_layer_table(layers: &[LayerSummary], frozen: &[String]) -> String {
    let is_frozen = |name: &String| frozen.contains(name);
    let mut rows = vec![[
        "layer".to_string(),
        "output".to_string(),
        "params".to_string(),
        "trainable".to_string(),
        "variables".to_string(),
    ]];
    let (mut total, mut total_frozen) = (0usize, 0usize);
    for l in layers {
        let frozen_here: usize = l
            .variables
            .iter()
            .filter(|(n, _)| is_frozen(n))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        let n_frozen = l.variables.iter().filter(|(n, _)| is_frozen(n)).count();
        let trainable = match n_frozen {
            0 => "yes",
            n if n == l.variables.len() => "no",
            _ => "partly",
        };
        let vars: Vec<String> = l
            .variables
            .iter()
            .map(|(n, s)| {
                let short = n.strip_prefix(&format!("{}.", l.name)).unwrap_or(n);
                format!("{short} {}", shape_text(s))
            })
            .collect();
        rows.push([
            l.name.clone(),
            l.output_shape.as_deref().map_or("?".into(), shape_text),
            l.params().to_string(),
            trainable.into(),
            vars.join(", "),
        ]);
        total += l.params();
        total_frozen += frozen_here;
    }
    rows.push([
        "total".into(),
        String::new(),
        total.to_string(),
        String::new(),
        format!("{} trainable, {total_frozen} frozen", total - total_frozen),
    ]);
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            // Parameter counts are right-aligned, the rest left-aligned.
            let padded = if c == 2 {
                format!("{cell:>w$}", w = widths[c])
            } else {
                format!("{cell:<w$}", w = widths[c])
            };
            line.push_str(&padded);
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_group_by_prefix_in_numeric_order() {
        let layers = group_layers([
            ("layers.10.weight".to_string(), vec![2, 3]),
            ("layers.2.bias".to_string(), vec![3]),
            ("layers.2.weight".to_string(), vec![3, 4]),
            ("scale".to_string(), vec![1]),
        ]);
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["layers.2", "layers.10", "scale"]);
        assert_eq!(layers[0].params(), 15);
        assert_eq!(layers[0].variables[0].0, "layers.2.bias");
        let table = render_layer_table(&layers, &["layers.2.bias".to_string()]);
        assert!(table.contains("partly"), "{table}");
        assert!(table.contains("19 trainable, 3 frozen"), "{table}");
    }
}
