//! `.safetensors` reader: every tensor in the file becomes a zero-copy
//! [`ArrayData`] view into one shared memory map.
//!
//! Parsing and validation (header JSON, offsets, full coverage of the data
//! section) are delegated to the `safetensors` crate, the reference
//! implementation; we only translate dtypes and record byte offsets.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};

use super::array::{ArrayData, Bytes, DType, FormatError, MappedFile};

/// Maps a safetensors dtype to ours; `None` for types we do not feed.
fn convert_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F16 => DType::F16,
        Dtype::U8 => DType::U8,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        _ => return None,
    })
}

/// Memory-maps a safetensors file and returns all tensors by name (sorted,
/// so iteration order is deterministic). Fails on the first tensor with an
/// unsupported dtype (F32/F64/F16/U8/I32/I64 are supported) or a scalar
/// shape, naming the tensor.
pub fn read_safetensors(
    path: impl AsRef<Path>,
) -> Result<BTreeMap<String, ArrayData>, FormatError> {
    let path = path.as_ref();
    let map = MappedFile::open(path, path)?;
    if map.is_empty() {
        return Err(FormatError::Empty {
            path: path.into(),
            format: "safetensors",
        });
    }
    let map = Arc::new(map);
    let st = SafeTensors::deserialize(&map).map_err(|e| FormatError::Safetensors {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let base = map.as_ptr() as usize;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let tensor_err = |reason: String| FormatError::Tensor {
            path: path.into(),
            tensor: name.clone(),
            reason,
        };
        let Some(dtype) = convert_dtype(view.dtype()) else {
            return Err(tensor_err(format!(
                "unsupported dtype {:?} (supported: F32, F64, F16, U8, I32, I64)",
                view.dtype()
            )));
        };
        if view.shape().is_empty() {
            return Err(tensor_err(
                "is a scalar (shape []); data tensors need a leading sample axis".into(),
            ));
        }
        // The view borrows from `map`, so its offset is a plain address
        // difference; this avoids re-deriving the header length ourselves.
        let data = view.data();
        let offset = data.as_ptr() as usize - base;
        let bytes = Bytes::Mapped {
            map: Arc::clone(&map),
            offset,
            len: data.len(),
        };
        let array = ArrayData::new(path, dtype, view.shape().to_vec(), bytes)
            .map_err(|e| tensor_err(e.to_string()))?;
        out.insert(name, array);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::array::test_util::test_dir;
    use super::*;
    use safetensors::tensor::TensorView;

    fn le<T: Copy, const N: usize>(vals: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
        vals.iter().flat_map(|&v| f(v)).collect()
    }

    #[test]
    fn reads_all_supported_dtypes_written_by_the_crate() {
        let dir = test_dir("st_dtypes");
        let f32s = le(&[1.0f32, -2.5, 3.25, 4.0, 5.0, 6.0], f32::to_le_bytes);
        let f64s = le(&[0.1f64, 0.2, 0.3], f64::to_le_bytes);
        let f16s = le(
            &[half::f16::from_f32(0.5), half::f16::from_f32(-1.0)],
            half::f16::to_le_bytes,
        );
        let u8s = vec![0u8, 7, 255, 3];
        let i32s = le(&[-1i32, 0, 1], i32::to_le_bytes);
        let i64s = le(&[5i64, -6], i64::to_le_bytes);
        let tensors = vec![
            ("x", TensorView::new(Dtype::F32, vec![2, 3], &f32s).unwrap()),
            ("d", TensorView::new(Dtype::F64, vec![3], &f64s).unwrap()),
            ("h", TensorView::new(Dtype::F16, vec![2, 1], &f16s).unwrap()),
            (
                "img",
                TensorView::new(Dtype::U8, vec![1, 2, 2], &u8s).unwrap(),
            ),
            ("y", TensorView::new(Dtype::I32, vec![3], &i32s).unwrap()),
            ("z", TensorView::new(Dtype::I64, vec![2], &i64s).unwrap()),
        ];
        let p = dir.join("data.safetensors");
        std::fs::write(&p, safetensors::serialize(tensors, None).unwrap()).unwrap();

        let m = read_safetensors(&p).unwrap();
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            ["d", "h", "img", "x", "y", "z"]
        );
        let mut out = Vec::new();
        let x = &m["x"];
        assert_eq!((x.dtype, x.shape.as_slice()), (DType::F32, &[2, 3][..]));
        assert_eq!(x.raw(), &f32s[..]);
        x.gather_f32(&[1], &mut out);
        assert_eq!(out, [4.0, 5.0, 6.0]);
        assert_eq!(m["d"].raw(), &f64s[..]);
        m["d"].range_f32(0, 3, &mut out);
        assert_eq!(out, [0.1f64 as f32, 0.2f64 as f32, 0.3f64 as f32]);
        m["h"].range_f32(0, 2, &mut out);
        assert_eq!(out, [0.5, -1.0]);
        assert_eq!(m["img"].samples_raw(0, 1), &u8s[..]);
        assert_eq!(m["img"].sample_shape(), &[2, 2]);
        m["y"].range_f32(0, 3, &mut out);
        assert_eq!(out, [-1.0, 0.0, 1.0]);
        assert_eq!(m["z"].raw(), &i64s[..]);
        assert!(matches!(m["z"].bytes, Bytes::Mapped { .. }));
        let e = m["y"].to_u32_labels().unwrap_err().to_string();
        assert!(e.contains("label -1 at index 0"), "{e}");
    }

    #[test]
    fn rejects_unsupported_dtypes_scalars_and_garbage() {
        let dir = test_dir("st_bad");
        let bf = vec![0u8; 4];
        let p = dir.join("bf16.safetensors");
        let t = vec![("w", TensorView::new(Dtype::BF16, vec![2], &bf).unwrap())];
        std::fs::write(&p, safetensors::serialize(t, None).unwrap()).unwrap();
        let e = read_safetensors(&p).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: tensor \"w\": unsupported dtype BF16 (supported: F32, F64, F16, U8, I32, I64)",
                p.display()
            )
        );

        let p = dir.join("scalar.safetensors");
        let one = 1.0f32.to_le_bytes();
        let t = vec![("s", TensorView::new(Dtype::F32, vec![], &one).unwrap())];
        std::fs::write(&p, safetensors::serialize(t, None).unwrap()).unwrap();
        let e = read_safetensors(&p).unwrap_err().to_string();
        assert!(e.contains("tensor \"s\": is a scalar"), "{e}");

        let p = dir.join("trunc.safetensors");
        let data = vec![0u8; 16];
        let t = vec![("a", TensorView::new(Dtype::F32, vec![4], &data).unwrap())];
        let mut bytes = safetensors::serialize(t, None).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&p, bytes).unwrap();
        let e = read_safetensors(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: invalid safetensors file:", p.display())),
            "{e}"
        );

        let p = dir.join("empty.safetensors");
        std::fs::write(&p, b"").unwrap();
        assert!(matches!(
            read_safetensors(&p),
            Err(FormatError::Empty { .. })
        ));
    }
}
