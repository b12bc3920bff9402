//! Reading the goldens tools/reference writes (safetensors of f32 / f64 / i64 arrays) and
//! comparing engine outputs with them.

use std::collections::HashMap;
use std::path::Path;

use iterinv_models::engine::{Gpu, Tensor};
use safetensors::{Dtype, SafeTensors};

/// A fixture array, widened to f64, with its shape.
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    /// A `[B, L]` integer array (token ids, masks) as rows.
    pub fn rows(&self) -> Vec<Vec<u32>> {
        let l = *self.shape.last().expect("a [B, L] array");
        self.data
            .chunks(l)
            .map(|r| r.iter().map(|&x| x as u32).collect())
            .collect()
    }

    /// The largest magnitude, the scale tolerances are relative to.
    pub fn scale(&self) -> f64 {
        self.data.iter().fold(0f64, |m, x| m.max(x.abs()))
    }
}

/// Every array of a golden file (F32, F64 or I64), widened to f64.
pub fn load_io(path: &Path) -> HashMap<String, Array> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let b = v.data();
            let data: Vec<f64> = match v.dtype() {
                Dtype::F32 => b
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::F64 => b
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::I64 => b
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                d => panic!("{k}: unexpected dtype {d:?}"),
            };
            (
                k,
                Array {
                    shape: v.shape().to_vec(),
                    data,
                },
            )
        })
        .collect()
}

/// The array as an f32 tensor.
pub fn upload(gpu: &Gpu, a: &Array) -> Tensor {
    let data: Vec<f32> = a.data.iter().map(|&x| x as f32).collect();
    Tensor::from_f32(gpu, &a.shape, &data).unwrap()
}

/// `got` has `want`'s shape, no NaN or infinity, and differs from it by at most
/// `tolerance × want.scale()` anywhere; prints the largest error. Returns `got`'s values.
pub fn assert_close(what: &str, got: &Tensor, want: &Array, tolerance: f64) -> Vec<f32> {
    assert_eq!(got.shape(), &want.shape[..], "{what}: shape");
    let got = got.to_vec().unwrap();
    let scale = want.scale();
    let mut worst = (0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(&want.data).enumerate() {
        assert!(g.is_finite(), "{what}[{i}] = {g}");
        let e = (g as f64 - w).abs();
        if e > worst.0 {
            worst = (e, i);
        }
    }
    let (e, i) = worst;
    eprintln!("{what}: max error {e:.3e} at {i} (scale {scale:.3})");
    assert!(
        e <= tolerance * scale,
        "{what}: |{} - {}| = {e:.3e} at {i} exceeds {tolerance} × {scale:.3}",
        got[i],
        want.data[i]
    );
    got
}

/// Largest |a − b|.
pub fn max_diff(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .fold(0f64, |m, (&x, &y)| m.max((x as f64 - y).abs()))
}
