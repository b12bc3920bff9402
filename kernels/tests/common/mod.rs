//! The kernel sources every kernel test checks: each kernel of the table assembled once per float
//! storage type of its inputs (integer inputs stay i32, words u32), and naga's parse + validation of one.
//! Shared so that validation and translation run over exactly the same set.

use iterinv_kernels::{all, assemble, storage_types, InputClass, StorageType};

/// One assembled kernel source.
pub struct Variant {
    pub kernel: &'static str,
    /// The WGSL extensions it enables (`Kernel::enables`).
    pub enables: Vec<&'static str>,
    /// Whether it uses subgroup operations (`Kernel::needs_subgroups`).
    pub subgroups: bool,
    /// The storage type applied to every float input, e.g. `F16`.
    pub float_type: StorageType,
    pub source: String,
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (float inputs {:?})", self.kernel, self.float_type)
    }
}

/// Every kernel in every input storage-type variant, with the table's default constants.
pub fn variants() -> Vec<Variant> {
    let mut out = Vec::new();
    for k in all() {
        // One variant per float storage type applied to all float inputs (ints stay i32).
        for &float_type in storage_types(InputClass::Float) {
            let types: Vec<StorageType> = k
                .inputs
                .iter()
                .map(|i| match i.class {
                    InputClass::Float => float_type,
                    InputClass::Int => StorageType::I32,
                    InputClass::Word => StorageType::U32,
                })
                .collect();
            let source = assemble(k, &types, &[])
                .unwrap_or_else(|e| panic!("kernel {} does not assemble: {e}", k.name));
            out.push(Variant {
                kernel: k.name,
                enables: k.enables(),
                subgroups: k.needs_subgroups(),
                float_type,
                source,
            });
        }
        // The scalar GEMM template's wide register blocks (8 × 8, K steps of 8), f32 inputs.
        if k.constants.iter().any(|(c, _)| *c == "TR") {
            let types = vec![StorageType::F32; k.inputs.len()];
            let wide = [("TR", "8u".to_string()), ("TK", "8u".to_string())];
            let source = assemble(k, &types, &wide)
                .unwrap_or_else(|e| panic!("kernel {} (TR 8) does not assemble: {e}", k.name));
            out.push(Variant {
                kernel: k.name,
                enables: k.enables(),
                subgroups: k.needs_subgroups(),
                float_type: StorageType::F32,
                source,
            });
        }
    }
    out
}

impl Variant {
    /// Whether it runs on hardware cooperative matrices (Vulkan's and Metal's; wgpu's DX12 and GL
    /// back ends offer none).
    pub fn cooperative(&self) -> bool {
        self.enables.contains(&"wgpu_cooperative_matrix")
    }

    /// The naga capabilities wgpu grants a device with the features the kernel needs.
    pub fn capabilities(&self) -> naga::valid::Capabilities {
        let mut caps = if self.subgroups {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::empty()
        };
        for e in &self.enables {
            caps |= match *e {
                "f16" => naga::valid::Capabilities::SHADER_FLOAT16,
                "wgpu_cooperative_matrix" => naga::valid::Capabilities::COOPERATIVE_MATRIX,
                other => panic!("kernel {self}: no capability known for `enable {other}`"),
            };
        }
        caps
    }
}

/// Parse and validate `v` as wgpu does before handing a module to a back end.
pub fn validate(v: &Variant) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(&v.source).unwrap_or_else(|e| {
        panic!(
            "kernel {v} does not parse:\n{}",
            e.emit_to_string(&v.source)
        )
    });
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), v.capabilities())
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "kernel {v} does not validate:\n{}",
                e.emit_to_string(&v.source)
            )
        });
    (module, info)
}
