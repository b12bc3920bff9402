//! Reading and writing the safetensors files `iterinv module` takes and produces: every array is
//! read into host memory as f64 (any integer or float dtype), and written back as f32.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use iterinv::{Gpu, Tensor};
use safetensors::{Dtype, SafeTensors};

/// One array from a file.
pub struct Array {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

impl Array {
    /// Upload as an f32 tensor.
    pub fn to_tensor(&self, gpu: &Gpu) -> Result<Tensor> {
        let data: Vec<f32> = self.values.iter().map(|&v| v as f32).collect();
        Ok(Tensor::from_f32(gpu, &self.shape, &data)?)
    }

    pub fn to_f32(&self) -> Vec<f32> {
        self.values.iter().map(|&v| v as f32).collect()
    }
}

/// Every array in `path`, by name.
pub fn read(path: &Path) -> Result<BTreeMap<String, Array>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let values = decode(view.dtype(), view.data())
            .with_context(|| format!("{}: array `{name}`", path.display()))?;
        out.insert(
            name,
            Array {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(out)
}

fn decode(dtype: Dtype, b: &[u8]) -> Result<Vec<f64>> {
    fn each<const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        b.chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks_exact")))
            .collect()
    }
    Ok(match dtype {
        Dtype::F64 => each(b, f64::from_le_bytes),
        Dtype::F32 => each(b, |c| f32::from_le_bytes(c).into()),
        Dtype::F16 => each(b, |c| half::f16::from_le_bytes(c).into()),
        Dtype::BF16 => each(b, |c| half::bf16::from_le_bytes(c).into()),
        Dtype::I64 => each(b, |c| i64::from_le_bytes(c) as f64),
        Dtype::I32 => each(b, |c| i32::from_le_bytes(c).into()),
        Dtype::I16 => each(b, |c| i16::from_le_bytes(c).into()),
        Dtype::I8 => each(b, |c| i8::from_le_bytes(c).into()),
        Dtype::U64 => each(b, |c| u64::from_le_bytes(c) as f64),
        Dtype::U32 => each(b, |c| u32::from_le_bytes(c).into()),
        Dtype::U16 => each(b, |c| u16::from_le_bytes(c).into()),
        Dtype::U8 => each(b, |c| u8::from_le_bytes(c).into()),
        Dtype::BOOL => each(b, |c: [u8; 1]| f64::from(c[0] != 0)),
        other => bail!("dtype {other:?} is not supported (use an integer or float dtype)"),
    })
}

/// Write `tensors` (read back from the GPU) as f32 arrays.
pub fn write(path: &Path, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let mut owned = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let bytes: Vec<u8> = t.to_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name.to_string(), t.shape().to_vec(), bytes));
    }
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    safetensors::serialize_to_file(views, None, path)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod fuzz {
    //! Fuzzing the `iterinv module` input reader: a real safetensors fixture (the T5 encoder's
    //! inputs and outputs, several dtypes' worth of arrays) with its bytes mutated. Each must read
    //! or fail with an error naming the file; the f64 copy of the arrays may take 8 bytes per
    //! stored byte (a U8 array), never more.
    use crate::fuzz_support;

    use fuzz_support::{assert_names_file, budget, fixture_bytes, guarded, mutate};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(fuzz_support::config(1000))]

        #[test]
        fn mutated_module_inputs_read_or_name_the_file(
            bytes in mutate::mutated(fixture_bytes("t5/encoder_io.safetensors"))
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("in.safetensors");
            std::fs::write(&path, &bytes).unwrap();
            let p = path.clone();
            let result = guarded("module input", budget(bytes.len(), 24), move || {
                super::read(&p).map(|arrays| arrays.len()).map_err(|e| format!("{e:#}"))
            });
            if let Err(msg) = result {
                assert_names_file(&msg, &path);
            }
        }
    }
}
