//! Every kernel, in every storage-type variant of its inputs (and the scalar GEMMs with their wide
//! register blocks), parses and validates with naga.

mod common;

use iterinv_kernels::{all, assemble, Kernel, StorageType};

#[test]
fn every_kernel_validates_with_every_input_storage_type() {
    let kernels = all();
    assert!(
        kernels.len() >= 3,
        "the table lists {} kernels",
        kernels.len()
    );
    let variants = common::variants();
    // One variant per float type, and the scalar GEMMs' wide register blocks once more.
    let wide = kernels
        .iter()
        .filter(|k| k.constants.iter().any(|(c, _)| *c == "TR"))
        .count();
    assert_eq!(wide, 4, "matmul and the three convolution GEMMs");
    assert_eq!(variants.len(), 3 * kernels.len() + wide);
    for v in &variants {
        common::validate(v);
    }
    // The cooperative-matrix kernels validate only with the capabilities they enable, which
    // `common::validate` grants from their `enable` directives.
    let cooperative = variants.iter().filter(|v| v.cooperative()).count();
    assert!(
        cooperative >= 9,
        "{cooperative} cooperative-matrix variants"
    );
}

#[test]
fn kernel_names_are_unique() {
    let mut names: Vec<_> = all().iter().map(|k| k.name).collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n);
}

#[test]
fn assemble_rejects_wrong_interfaces() {
    let k = iterinv_kernels::kernel("unary").unwrap();
    assert!(assemble(k, &[], &[]).is_err());
    assert!(assemble(k, &[StorageType::I32], &[]).is_err());
    assert!(assemble(k, &[StorageType::F32], &[("NOPE", "1u".into())]).is_err());
    // Words are u32 and nothing else; outputs are f32 or u32 words.
    let t = iterinv_kernels::kernel("texture_read").unwrap();
    assert!(assemble(t, &[StorageType::I32], &[]).is_err());
    assert!(assemble(&UNARY_INTO_HALVES, &[StorageType::F32], &[])
        .unwrap_err()
        .0
        .contains("f16"));
}

static UNARY_INTO_HALVES: Kernel = Kernel {
    name: "unary_into_halves",
    body: "",
    inputs: &[iterinv_kernels::Input {
        name: "x",
        class: iterinv_kernels::InputClass::Float,
    }],
    outputs: &["out: f16"],
    constants: &[],
};

/// Precision f16 reaches every product: each portable kernel of the GEMM-like families (matmul,
/// the convolutions and their gradients, attention forward and backward) has `ROUND_F16`, false
/// by default (f32 precision compiles the rounding away), and validates with it set. The
/// cooperative kernels are left out: the hardware ones take f16 or f32 inputs by their types, the
/// emulated one rounds by default.
#[test]
fn gemm_kernels_round_their_operands_under_f16() {
    use iterinv_kernels::families::{attention, conv, matmul};
    let kernels = [&matmul::MATMUL_TILED, &matmul::MATMUL_DIRECT]
        .into_iter()
        .chain(conv::KERNELS.iter().copied())
        .chain(attention::KERNELS.iter().copied())
        // Δ = dO·O per row: a reduction, no product to round.
        .filter(|k| k.name != "attention_grad_prep");
    let mut checked = 0;
    for k in kernels {
        let default = k.constants.iter().find(|(n, _)| *n == "ROUND_F16");
        assert_eq!(default, Some(&("ROUND_F16", "false")), "kernel {}", k.name);
        let types = vec![StorageType::F32; k.inputs.len()];
        let source = assemble(k, &types, &[("ROUND_F16", "true".into())])
            .unwrap_or_else(|e| panic!("kernel {} with ROUND_F16: {e}", k.name));
        common::validate(&common::Variant {
            kernel: k.name,
            enables: k.enables(),
            subgroups: k.needs_subgroups(),
            float_type: StorageType::F32,
            source,
        });
        checked += 1;
    }
    assert_eq!(checked, 2 + 6 + 10);
}
