//! TensorBoard's HParams records: the summaries its HParams tab reads to compare runs by
//! their hyperparameters and metrics.
//!
//! Each is a `Summary.Value` with a placeholder tensor (TensorBoard's `NULL_TENSOR`, an
//! empty float vector) whose `metadata.plugin_data` is `{plugin_name: "hparams", content:
//! HParamsPluginData}`; the tags and messages follow
//! `tensorboard/plugins/hparams/{metadata,summary_v2}.py`:
//! - `_hparams_/experiment`: the `Experiment` (hparam names, types and domains; metrics),
//!   once, in any run;
//! - `_hparams_/session_start_info` and `_hparams_/session_end_info`: one session's
//!   hparam values and its status, in the run whose scalars are that session's metrics.
//!
//! Field numbers (checked against tensorboard 2.21's `plugin_data_pb2` / `api_pb2` and
//! `google.protobuf.struct_pb2` descriptors):
//! - `HParamsPluginData`: 1 version (0), 2 experiment, 3 session_start_info, 4
//!   session_end_info.
//! - `Experiment`: 4 hparam_infos, 5 metric_infos.
//! - `HParamInfo`: 1 name, 4 type (`DataType`: 1 string, 2 bool, 3 float64), 5
//!   domain_discrete (`ListValue`).
//! - `MetricInfo`: 1 name (`MetricName`: 1 group, 2 tag), 3 display_name, 5 dataset_type
//!   (2 validation).
//! - `SessionStartInfo`: 1 hparams (map entries: 1 key, 2 `Value`).
//! - `SessionEndInfo`: 1 status (`Status`: 1 success, 2 failure, 3 running).
//! - `google.protobuf.Value`: 2 number_value, 3 string_value, 4 bool_value (a oneof, so
//!   written even when zero/false); `ListValue`: 1 values.
//! - `SummaryMetadata.PluginData`: 1 plugin_name, 2 content.
//!
//! Each record set is a whole event file with a fixed name ([`HPARAMS_FILE`]), written to
//! a temporary file and renamed into place, so writing it again replaces it (never two
//! sessions in one run).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::proto::{
    encode_file_version_event, encode_summary_event, put_bytes, put_f64, put_key, put_varint,
    WIRE_FIXED64, WIRE_VARINT,
};
use super::record::write_record;
use super::writer::TbError;

/// The event file of the HParams records in its directory. The `0` sorts it before the
/// training event files (`events.out.tfevents.{unix secs}.*`), which TensorBoard reads in
/// name order.
pub const HPARAMS_FILE: &str = "events.out.tfevents.0.hparams";

const EXPERIMENT_TAG: &str = "_hparams_/experiment";
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// One hyperparameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum HValue {
    /// A number (`DATA_TYPE_FLOAT64`).
    Number(f64),
    /// A string (`DATA_TYPE_STRING`).
    Text(String),
    /// A boolean (`DATA_TYPE_BOOL`).
    Bool(bool),
}

impl HValue {
    /// The `DataType` number of this kind of value.
    fn data_type(&self) -> u64 {
        match self {
            HValue::Text(_) => 1,
            HValue::Bool(_) => 2,
            HValue::Number(_) => 3,
        }
    }

    /// As a `google.protobuf.Value`.
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            HValue::Number(x) => {
                put_key(&mut b, 2, WIRE_FIXED64);
                b.extend_from_slice(&x.to_le_bytes());
            }
            HValue::Text(s) => put_bytes(&mut b, 3, s.as_bytes()),
            HValue::Bool(v) => {
                put_key(&mut b, 4, WIRE_VARINT);
                put_varint(&mut b, u64::from(*v));
            }
        }
        b
    }
}

/// One hyperparameter of an experiment: its name and its values (a discrete domain, all
/// of the same kind).
#[derive(Debug, Clone, PartialEq)]
pub struct HParamInfo {
    /// The name sessions give it.
    pub name: String,
    /// Its possible values, in the order TensorBoard lists them.
    pub values: Vec<HValue>,
}

/// What an experiment compares: its hyperparameters and its metrics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Experiment {
    /// The hyperparameters.
    pub hparams: Vec<HParamInfo>,
    /// The metrics, as `(tag, display name)`: the scalar `tag` in each session's own run
    /// (its last value is the session's), all validation metrics.
    pub metrics: Vec<(String, String)>,
}

/// How a session ended (`tensorboard.hparams.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// It ended normally.
    Success,
    /// It failed.
    Failure,
    /// It is still running (or was interrupted and can resume).
    Running,
}

/// One session (a run): its hyperparameter values, and its status once known.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Session {
    /// `(hparam name, value)`, in the experiment's order.
    pub hparams: Vec<(String, HValue)>,
    /// `None`: no `session_end_info` record.
    pub status: Option<SessionStatus>,
}

/// `Summary.Value{tag, tensor: NULL_TENSOR, metadata: {plugin_data: hparams, content}}`.
fn hparams_value(tag: &str, content: &[u8]) -> Vec<u8> {
    // TensorProto{dtype: DT_FLOAT, tensor_shape: {dim: [{size: 0}]}}; size 0 is omitted.
    const NULL_TENSOR: [u8; 6] = [0x08, 0x01, 0x12, 0x02, 0x12, 0x00];
    let mut plugin_data = Vec::new();
    put_bytes(&mut plugin_data, 1, b"hparams");
    put_bytes(&mut plugin_data, 2, content);
    let mut metadata = Vec::new();
    put_bytes(&mut metadata, 1, &plugin_data);
    let mut v = Vec::new();
    put_bytes(&mut v, 1, tag.as_bytes());
    put_bytes(&mut v, 8, &NULL_TENSOR);
    put_bytes(&mut v, 9, &metadata);
    v
}

/// `HParamsPluginData{version: 0, <field>: message}`.
fn plugin_data(field: u32, message: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_bytes(&mut b, field, message);
    b
}

fn encode_experiment(e: &Experiment) -> Vec<u8> {
    let mut exp = Vec::new();
    for h in &e.hparams {
        let mut info = Vec::new();
        put_bytes(&mut info, 1, h.name.as_bytes());
        if let Some(first) = h.values.first() {
            put_key(&mut info, 4, WIRE_VARINT);
            put_varint(&mut info, first.data_type());
        }
        let mut list = Vec::new();
        for v in &h.values {
            put_bytes(&mut list, 1, &v.encode());
        }
        put_bytes(&mut info, 5, &list);
        put_bytes(&mut exp, 4, &info);
    }
    for (tag, display) in &e.metrics {
        let mut name = Vec::new();
        put_bytes(&mut name, 2, tag.as_bytes());
        let mut info = Vec::new();
        put_bytes(&mut info, 1, &name);
        if !display.is_empty() {
            put_bytes(&mut info, 3, display.as_bytes());
        }
        put_key(&mut info, 5, WIRE_VARINT);
        put_varint(&mut info, 2); // DATASET_VALIDATION
        put_bytes(&mut exp, 5, &info);
    }
    plugin_data(2, &exp)
}

fn encode_session_start(s: &Session) -> Vec<u8> {
    let mut start = Vec::new();
    for (k, v) in &s.hparams {
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, k.as_bytes());
        put_bytes(&mut entry, 2, &v.encode());
        put_bytes(&mut start, 1, &entry);
    }
    plugin_data(3, &start)
}

fn encode_session_end(status: SessionStatus, end_time: f64) -> Vec<u8> {
    let mut end = Vec::new();
    put_key(&mut end, 1, WIRE_VARINT);
    put_varint(
        &mut end,
        match status {
            SessionStatus::Success => 1,
            SessionStatus::Failure => 2,
            SessionStatus::Running => 3,
        },
    );
    put_f64(&mut end, 2, end_time);
    plugin_data(4, &end)
}

/// Writes `dir/HPARAMS_FILE` (replacing it) with `values` as summaries at step 0.
fn write_file(dir: &Path, wall_time: f64, values: &[Vec<u8>]) -> Result<PathBuf, TbError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TbError::Io { op, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let path = dir.join(HPARAMS_FILE);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".hparams.").suffix(".tmp");
    #[cfg(unix)]
    {
        // The usual permissions (0666 less the umask), like the other event files.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(io("create event file", dir))?;
    let mut bytes = Vec::new();
    write_record(&mut bytes, &encode_file_version_event(wall_time))
        .map_err(io("write event file", &path))?;
    for v in values {
        write_record(&mut bytes, &encode_summary_event(wall_time, 0, v))
            .map_err(io("write event file", &path))?;
    }
    tmp.write_all(&bytes)
        .and_then(|()| tmp.flush())
        .map_err(io("write event file", &path))?;
    tmp.persist(&path)
        .map_err(|e| io("write event file", &path)(e.error))?;
    Ok(path)
}

/// Writes the experiment's record into `dir` (replacing an earlier one); returns the file.
pub fn write_experiment(dir: &Path, e: &Experiment, wall_time: f64) -> Result<PathBuf, TbError> {
    let value = hparams_value(EXPERIMENT_TAG, &encode_experiment(e));
    write_file(dir, wall_time, &[value])
}

/// Writes a session's records into `dir`, the run of its metrics (replacing earlier
/// ones); returns the file.
pub fn write_session(dir: &Path, s: &Session, wall_time: f64) -> Result<PathBuf, TbError> {
    let mut values = vec![hparams_value(SESSION_START_TAG, &encode_session_start(s))];
    if let Some(status) = s.status {
        values.push(hparams_value(
            SESSION_END_TAG,
            &encode_session_end(status, wall_time),
        ));
    }
    write_file(dir, wall_time, &values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bytes from Python protobuf (tensorboard 2.21):
    /// `HParamsPluginData(session_start_info=SessionStartInfo(hparams={"lr":
    /// Value(number_value=0.5)})).SerializeToString()`, and the same for the others.
    #[test]
    fn plugin_data_matches_python_protobuf() {
        let s = Session {
            hparams: vec![("lr".into(), HValue::Number(0.5))],
            status: None,
        };
        assert_eq!(encode_session_start(&s), GOLDEN_START);
        assert_eq!(encode_session_end(SessionStatus::Success, 0.0), GOLDEN_END);
        let e = Experiment {
            hparams: vec![HParamInfo {
                name: "opt".into(),
                values: vec![HValue::Text("adam".into()), HValue::Text("sgd".into())],
            }],
            metrics: vec![("val/accuracy".into(), "val_accuracy".into())],
        };
        assert_eq!(encode_experiment(&e), GOLDEN_EXPERIMENT);
        let b = HValue::Bool(false).encode();
        assert_eq!(b, [0x20, 0x00]);
    }

    const GOLDEN_START: &[u8] = &[
        0x1a, 0x11, 0x0a, 0x0f, 0x0a, 0x02, 0x6c, 0x72, 0x12, 0x09, 0x11, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0xe0, 0x3f,
    ];
    const GOLDEN_END: &[u8] = &[0x22, 0x02, 0x08, 0x01];
    const GOLDEN_EXPERIMENT: &[u8] = &[
        0x12, 0x3c, 0x22, 0x18, 0x0a, 0x03, 0x6f, 0x70, 0x74, 0x20, 0x01, 0x2a, 0x0f, 0x0a, 0x06,
        0x1a, 0x04, 0x61, 0x64, 0x61, 0x6d, 0x0a, 0x05, 0x1a, 0x03, 0x73, 0x67, 0x64, 0x2a, 0x20,
        0x0a, 0x0e, 0x12, 0x0c, 0x76, 0x61, 0x6c, 0x2f, 0x61, 0x63, 0x63, 0x75, 0x72, 0x61, 0x63,
        0x79, 0x1a, 0x0c, 0x76, 0x61, 0x6c, 0x5f, 0x61, 0x63, 0x63, 0x75, 0x72, 0x61, 0x63, 0x79,
        0x28, 0x02,
    ];
}
