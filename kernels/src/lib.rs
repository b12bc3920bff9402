//! The WGSL compute kernels of iterinv and the table that names them.
//!
//! A kernel body is plain WGSL that reads its tensor inputs through loader functions (`ld_NAME(i)`)
//! and writes its outputs directly (`f32`, or packed `u32` words where the table says so). [`assemble`] prepends the bindings and loaders for the storage
//! types the caller binds (so one body serves f32, f16 and bf16 weights, the 16-bit ones read as
//! `u32` words and widened with integer ops, without `SHADER_F16`) and the compile-time constants that
//! specialise it (tile sizes, operation codes, optional inputs). Binding 0 is always the kernel's
//! `Params` uniform, then the inputs, then the outputs, in the order the table lists them.

pub mod families;

pub use families::{all, kernel};

/// Helpers (group indexing, erf, GELU, SiLU, activation codes) prepended to every kernel.
pub const COMMON: &str = include_str!("wgsl/common.wgsl");

/// What kind of values an input binding holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputClass {
    /// Floating point; may be stored as f32, f16 or bf16. `ld_NAME(i)` returns `f32`.
    Float,
    /// Integer ids stored as i32. `ld_NAME(i)` returns `i32`.
    Int,
    /// Raw 32-bit words, stored as u32: packed pixels copied from a texture. `ld_NAME(i)` returns
    /// `u32`.
    Word,
}

/// One read-only input of a kernel.
#[derive(Clone, Copy, Debug)]
pub struct Input {
    pub name: &'static str,
    pub class: InputClass,
}

/// A kernel family: one WGSL body, its interface, and the constants that specialise it.
#[derive(Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub body: &'static str,
    pub inputs: &'static [Input],
    /// Each output's name, an `array<f32>`; `"NAME: u32"` makes it an `array<u32>` of packed
    /// words (pixels on their way to a texture).
    pub outputs: &'static [&'static str],
    /// `(name, default)` for every constant the body uses; the default is a WGSL expression.
    pub constants: &'static [(&'static str, &'static str)],
}

impl Kernel {
    /// The WGSL extensions the kernel enables (`f16`, `wgpu_cooperative_matrix`): the device
    /// features it needs beyond the baseline.
    pub fn enables(&self) -> Vec<&'static str> {
        self.body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("enable "))
            .map(|e| e.trim_end_matches(';').trim())
            .collect()
    }

    /// Whether the kernel uses subgroup operations (the `*_subgroup` row reductions): it runs only
    /// on devices with `Features::SUBGROUP` (naga takes them without an `enable` directive).
    pub fn needs_subgroups(&self) -> bool {
        self.body.contains("@builtin(subgroup_size)")
    }

    /// Whether the kernel runs on hardware cooperative matrices.
    pub fn needs_cooperative_matrix(&self) -> bool {
        self.enables().contains(&"wgpu_cooperative_matrix")
    }
}

/// How a tensor's elements are stored in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageType {
    F32,
    F16,
    Bf16,
    I32,
    U32,
}

impl StorageType {
    fn name(self) -> &'static str {
        match self {
            StorageType::F32 => "f32",
            StorageType::F16 => "f16",
            StorageType::Bf16 => "bf16",
            StorageType::I32 => "i32",
            StorageType::U32 => "u32",
        }
    }
}

/// Why a kernel could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembleError(pub String);

impl std::fmt::Display for AssembleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for AssembleError {}

fn loader(name: &str, binding: usize, ty: StorageType) -> String {
    let decl = |elem: &str| {
        format!("@group(0) @binding({binding}) var<storage, read> {name}_buf: array<{elem}>;\n")
    };
    match ty {
        StorageType::F32 => decl("f32") + &format!("fn ld_{name}(i: u32) -> f32 {{ return {name}_buf[i]; }}\n"),
        StorageType::I32 => decl("i32") + &format!("fn ld_{name}(i: u32) -> i32 {{ return {name}_buf[i]; }}\n"),
        StorageType::U32 => decl("u32") + &format!("fn ld_{name}(i: u32) -> u32 {{ return {name}_buf[i]; }}\n"),
        // Two halves per little-endian word: element 2k in the low 16 bits. Decoded with integer
        // ops (`half_to_f32` in common.wgsl), exact, and free of the SHADER_F16_IN_F32 downlevel flag.
        StorageType::F16 => {
            decl("u32")
                + &format!(
                    "fn ld_{name}(i: u32) -> f32 {{ return half_to_f32(({name}_buf[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu); }}\n"
                )
        }
        // bf16 is the top half of an f32: shift it into place.
        StorageType::Bf16 => {
            decl("u32")
                + &format!(
                    "fn ld_{name}(i: u32) -> f32 {{ let w = {name}_buf[i >> 1u]; \
                     return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }}\n"
                )
        }
    }
}

/// The complete WGSL module for `kernel` with inputs stored as `input_types` and the given constant
/// overrides (`(name, WGSL expression)`); constants not overridden take the table's default.
pub fn assemble(
    kernel: &Kernel,
    input_types: &[StorageType],
    overrides: &[(&str, String)],
) -> Result<String, AssembleError> {
    if input_types.len() != kernel.inputs.len() {
        return Err(AssembleError(format!(
            "kernel {}: {} input types given for {} inputs",
            kernel.name,
            input_types.len(),
            kernel.inputs.len()
        )));
    }
    for (name, _) in overrides {
        if !kernel.constants.iter().any(|(c, _)| c == name) {
            return Err(AssembleError(format!(
                "kernel {}: no constant named {name}",
                kernel.name
            )));
        }
    }
    // Enable directives must open a WGSL module: hoist the body's (a prelude's) above everything.
    let (enables, body): (Vec<&str>, Vec<&str>) = kernel
        .body
        .lines()
        .partition(|l| l.trim_start().starts_with("enable "));
    let mut src = enables
        .iter()
        .map(|l| format!("{}\n", l.trim()))
        .collect::<String>();
    src += &format!("// kernel {}\n", kernel.name);
    for (name, default) in kernel.constants {
        let value = overrides
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or(default);
        src += &format!("const {name} = {value};\n");
    }
    src += COMMON;
    src += "@group(0) @binding(0) var<uniform> p: Params;\n";
    for (i, (input, ty)) in kernel.inputs.iter().zip(input_types).enumerate() {
        let ok = match input.class {
            InputClass::Float => storage_types(InputClass::Float).contains(ty),
            InputClass::Int => *ty == StorageType::I32,
            InputClass::Word => *ty == StorageType::U32,
        };
        if !ok {
            return Err(AssembleError(format!(
                "kernel {}: input {} cannot be stored as {}",
                kernel.name,
                input.name,
                ty.name()
            )));
        }
        src += &loader(input.name, i + 1, *ty);
    }
    for (i, output) in kernel.outputs.iter().enumerate() {
        let binding = 1 + kernel.inputs.len() + i;
        let (name, elem) = match output.split_once(':') {
            None => (*output, "f32"),
            Some((name, elem)) if elem.trim() == "u32" => (name.trim(), "u32"),
            Some((name, elem)) => {
                return Err(AssembleError(format!(
                    "kernel {}: output {name} has element type {elem}; outputs are f32 or u32",
                    kernel.name
                )))
            }
        };
        src += &format!(
            "@group(0) @binding({binding}) var<storage, read_write> {name}: array<{elem}>;\n"
        );
    }
    if enables.is_empty() {
        src += kernel.body;
    } else {
        src += &body.join("\n");
    }
    Ok(src)
}

/// The storage types every input accepts, for validating all variants of a kernel.
pub fn storage_types(class: InputClass) -> &'static [StorageType] {
    match class {
        InputClass::Float => &[StorageType::F32, StorageType::F16, StorageType::Bf16],
        InputClass::Int => &[StorageType::I32],
        InputClass::Word => &[StorageType::U32],
    }
}
