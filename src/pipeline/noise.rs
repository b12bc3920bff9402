//! Where the cascade's random tensors come from: a seed (reproducible on every backend, see
//! `engine::random`) or tensors injected by the caller (to match a reference run exactly).

use std::collections::HashMap;

use iterinv_models::{Error, Result};

use crate::{Gpu, Tensor};

/// The random draws of a cascade run, each named by its role: `stage1_initial`,
/// `stage1_step_{i}` (the i-th sampling step's variance noise), `stage2_initial`,
/// `stage2_condition` (the noise added to the upscaled stage-I image), `stage2_step_{i}`.
pub trait NoiseSource {
    fn noise(&mut self, name: &str, shape: &[usize]) -> Result<Tensor>;
}

/// Standard normal noise from a seed: each name gets its own Philox stream, so a draw does not
/// depend on which other draws were made (changing the step count of stage II leaves stage I's
/// noise unchanged).
pub struct SeededNoise {
    gpu: Gpu,
    seed: u64,
}

impl SeededNoise {
    pub fn new(gpu: &Gpu, seed: u64) -> SeededNoise {
        SeededNoise {
            gpu: gpu.clone(),
            seed,
        }
    }
}

impl NoiseSource for SeededNoise {
    fn noise(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        // FNV-1a of the name: a stable stream id.
        let stream = name.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        Ok(Tensor::randn(&self.gpu, shape, self.seed, stream)?)
    }
}

/// Noise given by name; asking for a name that was not given, or with another shape, is an error.
#[derive(Default)]
pub struct InjectedNoise {
    tensors: HashMap<String, Tensor>,
}

impl InjectedNoise {
    pub fn new() -> InjectedNoise {
        InjectedNoise::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }
}

impl NoiseSource for InjectedNoise {
    fn noise(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        match self.tensors.get(name) {
            Some(t) if t.shape() == shape => Ok(t.clone()),
            Some(t) => Err(Error::Input {
                what: format!("noise `{name}`"),
                detail: format!("has shape {:?}; the run needs {shape:?}", t.shape()),
            }),
            None => Err(Error::Input {
                what: format!("noise `{name}`"),
                detail: format!("was not injected (the run needs one of shape {shape:?})"),
            }),
        }
    }
}
