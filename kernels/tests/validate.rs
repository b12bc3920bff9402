//! Every kernel, in every storage-type variant of its inputs, parses and validates with naga.

use iterinv_kernels::{all, assemble, storage_types, InputClass, StorageType};

fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("kernel {name} does not parse:\n{}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| {
        panic!(
            "kernel {name} does not validate:\n{}",
            e.emit_to_string(src)
        )
    });
}

#[test]
fn every_kernel_validates_with_every_input_storage_type() {
    let kernels = all();
    assert!(
        kernels.len() >= 3,
        "the table lists {} kernels",
        kernels.len()
    );
    for k in kernels {
        // One variant per float storage type applied to all float inputs (ints stay i32).
        for float_ty in storage_types(InputClass::Float) {
            let types: Vec<StorageType> = k
                .inputs
                .iter()
                .map(|i| {
                    if i.class == InputClass::Float {
                        *float_ty
                    } else {
                        StorageType::I32
                    }
                })
                .collect();
            let src = assemble(k, &types, &[]).unwrap();
            validate(k.name, &src);
        }
    }
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
}
