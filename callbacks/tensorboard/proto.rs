//! Protobuf encoding of the few TensorBoard messages the event writer emits.
//!
//! Every record of an event file is one serialized `tensorboard.Event`
//! (`tensorboard/compat/proto/event.proto`); the first carries
//! `file_version = "brain.Event:2"`, which TensorBoard uses to recognise the file.
//!
//! Why hand-rolled: the format is tiny (a handful of messages, four wire types), a
//! protobuf toolchain (`prost-build` + `protoc`) would cost far more build time than
//! these ~110 lines, and `prost`'s derive without a toolchain would change bytes:
//! it skips a proto3 double when `value != 0.0`, so a `-0.0` (e.g. the min/max/sum of a
//! histogram of `[-0.0]`) would be dropped, while Python's protobuf and this file keep it.
//!
//! Protobuf field numbers used here (checked against tensorboard 2.21's
//! generated `*_pb2` descriptors):
//! - `Event`: 1 wall_time double, 2 step int64, 3 file_version string, 5 summary.
//! - `Summary`: 1 repeated value.
//! - `Summary.Value`: 1 tag, 2 simple_value float, 5 histo, 8 tensor, 9 metadata
//!   (simple_value / histo / tensor are a oneof, so they are written even when zero).
//! - `HistogramProto`: 1 min, 2 max, 3 num, 4 sum, 5 sum_squares (doubles),
//!   6 bucket_limit, 7 bucket (packed repeated doubles).
//! - `SummaryMetadata`: 1 plugin_data; `PluginData`: 1 plugin_name.
//! - `TensorProto`: 1 dtype (DT_STRING = 7), 2 tensor_shape, 8 string_val.
//!
//! Non-oneof scalar fields are omitted when zero (canonical proto3), so the
//! bytes match what Python's protobuf would serialize for the same message.

use super::histogram::Histogram;

pub(super) const WIRE_VARINT: u8 = 0;
pub(super) const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;
const DT_STRING: u64 = 7;
const FILE_VERSION: &str = "brain.Event:2";

pub(super) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(super) fn put_key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

/// Omits zero (canonical proto3); `-0.0` is kept, as protobuf does.
pub(super) fn put_f64(buf: &mut Vec<u8>, field: u32, v: f64) {
    if v.to_bits() != 0 {
        put_key(buf, field, WIRE_FIXED64);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_i64(buf: &mut Vec<u8>, field: u32, v: i64) {
    if v != 0 {
        put_key(buf, field, WIRE_VARINT);
        put_varint(buf, v as u64);
    }
}

pub(super) fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(buf, field, WIRE_LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_packed_f64(buf: &mut Vec<u8>, field: u32, vs: &[f64]) {
    if vs.is_empty() {
        return;
    }
    put_key(buf, field, WIRE_LEN);
    put_varint(buf, (vs.len() * 8) as u64);
    for v in vs {
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn encode_file_version_event(wall_time: f64) -> Vec<u8> {
    let mut ev = Vec::new();
    put_f64(&mut ev, 1, wall_time);
    put_bytes(&mut ev, 3, FILE_VERSION.as_bytes());
    ev
}

/// `Event{wall_time, step, summary: Summary{value: [value]}}`; fields in number
/// order so the bytes are canonical.
pub(crate) fn encode_summary_event(wall_time: f64, step: i64, value: &[u8]) -> Vec<u8> {
    let mut summary = Vec::with_capacity(value.len() + 4);
    put_bytes(&mut summary, 1, value);
    let mut ev = Vec::with_capacity(summary.len() + 24);
    put_f64(&mut ev, 1, wall_time);
    put_i64(&mut ev, 2, step);
    put_bytes(&mut ev, 5, &summary);
    ev
}

pub(crate) fn encode_scalar_value(tag: &str, value: f32) -> Vec<u8> {
    let mut v = Vec::with_capacity(tag.len() + 8);
    put_bytes(&mut v, 1, tag.as_bytes());
    // Oneof member: always present, even for 0.0.
    put_key(&mut v, 2, WIRE_FIXED32);
    v.extend_from_slice(&value.to_le_bytes());
    v
}

pub(crate) fn encode_histogram_value(tag: &str, h: &Histogram) -> Vec<u8> {
    let mut histo = Vec::new();
    put_f64(&mut histo, 1, h.min);
    put_f64(&mut histo, 2, h.max);
    put_f64(&mut histo, 3, h.num);
    put_f64(&mut histo, 4, h.sum);
    put_f64(&mut histo, 5, h.sum_squares);
    put_packed_f64(&mut histo, 6, &h.bucket_limit);
    put_packed_f64(&mut histo, 7, &h.bucket);
    let mut v = Vec::with_capacity(histo.len() + tag.len() + 8);
    put_bytes(&mut v, 1, tag.as_bytes());
    put_bytes(&mut v, 5, &histo);
    v
}

/// Text summaries are scalar DT_STRING tensors tagged with the "text" plugin;
/// TensorBoard's text dashboard keys off `plugin_name`.
pub(crate) fn encode_text_value(tag: &str, text: &str) -> Vec<u8> {
    let mut tensor = Vec::with_capacity(text.len() + 8);
    put_key(&mut tensor, 1, WIRE_VARINT);
    put_varint(&mut tensor, DT_STRING);
    put_bytes(&mut tensor, 2, &[]); // empty TensorShapeProto = scalar
    put_bytes(&mut tensor, 8, text.as_bytes());
    let mut plugin_data = Vec::new();
    put_bytes(&mut plugin_data, 1, b"text");
    let mut metadata = Vec::new();
    put_bytes(&mut metadata, 1, &plugin_data);
    let mut v = Vec::with_capacity(tensor.len() + metadata.len() + tag.len() + 8);
    put_bytes(&mut v, 1, tag.as_bytes());
    put_bytes(&mut v, 8, &tensor);
    put_bytes(&mut v, 9, &metadata);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_encoding_of_negative_step() {
        let mut b = Vec::new();
        put_i64(&mut b, 2, -1);
        // Key, then -1 as a 10-byte two's complement varint.
        let mut expected = vec![0x10];
        expected.extend_from_slice(&[0xff; 9]);
        expected.push(0x01);
        assert_eq!(b, expected);
    }

    /// Golden bytes produced by Python protobuf (tensorboard 2.21) for the same
    /// messages, i.e. `Event(...).SerializeToString()`.
    #[test]
    fn encoding_matches_python_protobuf() {
        assert_eq!(
            encode_summary_event(1.5, 3, &encode_scalar_value("a/b", 0.25)),
            [
                0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 0x03, 0x2a, 0x0c, 0x0a, 0x0a, 0x0a, 0x03,
                b'a', b'/', b'b', 0x15, 0, 0, 0x80, 0x3e
            ]
        );
        assert_eq!(
            encode_file_version_event(2.0),
            [
                0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x1a, 0x0d, b'b', b'r', b'a', b'i', b'n', b'.',
                b'E', b'v', b'e', b'n', b't', b':', b'2'
            ]
        );
        assert_eq!(
            encode_text_value("t", "hi"),
            [
                0x0a, 0x01, b't', 0x42, 0x08, 0x08, 0x07, 0x12, 0x00, 0x42, 0x02, b'h', b'i', 0x4a,
                0x08, 0x0a, 0x06, 0x0a, 0x04, b't', b'e', b'x', b't'
            ]
        );
    }
}
