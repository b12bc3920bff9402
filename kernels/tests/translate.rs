//! Every kernel, in every storage-type variant of its inputs (the set `validate.rs` validates),
//! translates through naga's MSL and HLSL back ends: the code wgpu hands to Metal and DX12. Neither
//! driver runs here, so this is where a kernel that only Vulkan accepts is caught. The
//! cooperative-matrix kernels, which lavapipe cannot run, translate to SPIR-V and (their Metal
//! shapes) to MSL.
//!
//! The options follow wgpu-hal 30's Metal and DX12 back ends for a compute pipeline created with
//! wgpu's defaults (bounds checks, loop bounding and zero-initialised workgroup memory on), and the
//! binding maps follow the engine's bind-group layout (binding 0 a uniform with a dynamic offset,
//! then read-only storage inputs, then read-write storage outputs) the way wgpu-hal assigns slots
//! and registers. `fake_missing_bindings` is off, as in wgpu, so a binding the map lacks fails.

mod common;

use common::Variant;
use naga::back::{hlsl, msl, spv};
use naga::{AddressSpace, Module, ResourceBinding, ShaderStage, StorageAccess};

/// The oldest language version wgpu's Metal back end picks (macOS 10.13) and a current one: the
/// writer's output differs between them, and either may meet a user's Mac.
const MSL_VERSIONS: [(u8, u8); 2] = [(2, 0), (3, 2)];
/// The lowest shader model wgpu's DX12 back end compiles with DXC, and the one it uses when the
/// device and DXC offer it.
const SHADER_MODELS: [hlsl::ShaderModel; 2] = [hlsl::ShaderModel::V6_0, hlsl::ShaderModel::V6_6];

/// How a global of the module is bound, as the engine's bind-group layout declares it.
enum Slot {
    Uniform,
    Read,
    ReadWrite,
}

/// The module's bound globals in binding order, with the kind of slot each takes.
fn bindings(module: &Module) -> Vec<(ResourceBinding, Slot)> {
    let mut out: Vec<_> = module
        .global_variables
        .iter()
        .filter_map(|(_, g)| {
            let binding = g.binding?;
            let slot = match g.space {
                AddressSpace::Uniform => Slot::Uniform,
                AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                    Slot::ReadWrite
                }
                AddressSpace::Storage { .. } => Slot::Read,
                other => panic!("unexpected bound global in {other:?}"),
            };
            Some((binding, slot))
        })
        .collect();
    out.sort_by_key(|(b, _)| (b.group, b.binding));
    out
}

/// The single compute entry point every kernel has.
fn entry_point(v: &Variant, module: &Module) -> String {
    let eps: Vec<_> = module
        .entry_points
        .iter()
        .filter(|e| e.stage == ShaderStage::Compute)
        .collect();
    assert_eq!(eps.len(), 1, "kernel {v}: compute entry points");
    eps[0].name.clone()
}

/// Like wgpu-hal's Metal pipeline layout: one buffer slot per binding in order (storage buffers
/// marked mutable when written), then the sizes buffer that runtime-sized arrays need.
fn msl_options(module: &Module, ep: &str, lang_version: (u8, u8)) -> msl::Options {
    let mut resources = msl::BindingMap::new();
    for (slot, (binding, kind)) in bindings(module).into_iter().enumerate() {
        let target = msl::BindTarget {
            buffer: Some(slot as msl::Slot),
            mutable: matches!(kind, Slot::ReadWrite),
            ..Default::default()
        };
        resources.insert(binding, target);
    }
    let sizes_buffer = Some(resources.len() as msl::Slot);
    let checks = naga::proc::BoundsCheckPolicy::Restrict;
    msl::Options {
        lang_version,
        per_entry_point_map: msl::EntryPointResourceMap::from([(
            ep.to_owned(),
            msl::EntryPointResources {
                resources,
                immediates_buffer: None,
                sizes_buffer,
            },
        )]),
        fake_missing_bindings: false,
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: checks,
            buffer: checks,
            image_load: checks,
            binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
        },
        zero_initialize_workgroup_memory: true,
        force_loop_bounding: true,
        emit_int_div_checks: true,
        ..Default::default()
    }
}

/// Like wgpu-hal's DX12 root signature: constant buffers, shader resource views and unordered
/// access views each numbered from 0 in binding order within the group's space, and the special
/// constants (`num_workgroups`) in the next constant-buffer register when the kernel reads them.
fn hlsl_options(module: &Module, shader_model: hlsl::ShaderModel) -> hlsl::Options {
    let mut registers = [0u32; 3];
    let mut binding_map = hlsl::BindingMap::new();
    for (binding, kind) in bindings(module) {
        let register = &mut registers[kind as usize];
        binding_map.insert(
            binding,
            hlsl::BindTarget {
                space: binding.group as u8,
                register: *register,
                ..Default::default()
            },
        );
        *register += 1;
    }
    let reads_num_workgroups = module.entry_points.iter().any(|e| {
        e.function
            .arguments
            .iter()
            .any(|a| a.binding == Some(naga::Binding::BuiltIn(naga::BuiltIn::NumWorkGroups)))
    });
    hlsl::Options {
        shader_model,
        binding_map,
        fake_missing_bindings: false,
        special_constants_binding: reads_num_workgroups.then_some(hlsl::BindTarget {
            register: registers[Slot::Uniform as usize],
            ..Default::default()
        }),
        zero_initialize_workgroup_memory: true,
        restrict_indexing: true,
        force_loop_bounding: true,
        ..Default::default()
    }
}

/// The translated source must declare the entry point under the name the writer reports.
fn check_output(
    v: &Variant,
    target: &str,
    src: &str,
    names: &[Result<String, impl std::fmt::Display>],
) {
    assert_eq!(
        names.len(),
        1,
        "kernel {v} for {target}: entry points written"
    );
    let name = match &names[0] {
        Ok(n) => n,
        Err(e) => panic!("kernel {v} does not translate to {target}: entry point: {e}"),
    };
    assert!(!src.trim().is_empty(), "kernel {v}: empty {target} output");
    assert!(
        src.contains(name.as_str()),
        "kernel {v}: {target} output lacks its entry point {name}:\n{src}"
    );
}

/// `module` as wgpu's Metal back end would write it at `version`, checked.
fn write_msl(
    v: &Variant,
    module: &Module,
    info: &naga::valid::ModuleInfo,
    ep: &str,
    version: (u8, u8),
) -> String {
    let target = format!("MSL {}.{}", version.0, version.1);
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, ep.to_owned())),
        ..Default::default()
    };
    let (src, tr) = msl::write_string(module, info, &msl_options(module, ep, version), &pipeline)
        .unwrap_or_else(|e| panic!("kernel {v} does not translate to {target}: {e}"));
    check_output(v, &target, &src, &tr.entry_point_names);
    src
}

#[test]
fn every_kernel_translates_to_msl_and_hlsl() {
    let variants = common::variants();
    assert!(!variants.is_empty(), "no kernel sources to translate");
    let mut translated = 0;
    let portable: Vec<_> = variants.iter().filter(|v| !v.cooperative()).collect();
    for v in &portable {
        let (module, info) = common::validate(v);
        let ep = entry_point(v, &module);
        // wgpu applies pipeline-overridable constants first; the kernels have none today, but a
        // kernel that gains one must translate as wgpu would hand it over.
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((ShaderStage::Compute, &ep)),
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("kernel {v}: overrides: {e}"));

        for version in MSL_VERSIONS {
            write_msl(v, &module, &info, &ep, version);
            translated += 1;
        }

        for model in SHADER_MODELS {
            let target = format!("HLSL {}", model.to_str());
            let options = hlsl_options(&module, model);
            let pipeline = hlsl::PipelineOptions {
                entry_point: Some((ShaderStage::Compute, ep.clone())),
            };
            let mut src = String::new();
            let reflection = hlsl::Writer::new(&mut src, &options, &pipeline)
                .write(&module, &info, None)
                .unwrap_or_else(|e| panic!("kernel {v} does not translate to {target}: {e}"));
            check_output(v, &target, &src, &reflection.entry_point_names);
            translated += 1;
        }
    }
    assert_eq!(
        translated,
        portable.len() * (MSL_VERSIONS.len() + SHADER_MODELS.len())
    );
}

/// Cooperative-matrix kernels reach two back ends in wgpu 30: Vulkan (SPIR-V with
/// `SPV_KHR_cooperative_matrix`) for every tile shape, and Metal (MSL 2.3 and later, simdgroup
/// matrices) for the 8 × 8 shapes, the only ones Metal has. Neither runs here: this is where a
/// kernel those drivers would be handed fails to translate.
#[test]
fn cooperative_kernels_translate_to_spirv_and_msl() {
    let variants: Vec<_> = common::variants()
        .into_iter()
        .filter(|v| v.cooperative())
        .collect();
    assert!(
        variants.len() >= 3,
        "{} cooperative-matrix variants",
        variants.len()
    );
    let mut metal = 0;
    for v in &variants {
        let (module, info) = common::validate(v);
        let ep = entry_point(v, &module);
        let spv_options = spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        let pipeline = spv::PipelineOptions {
            shader_stage: ShaderStage::Compute,
            entry_point: ep.clone(),
        };
        let words = spv::write_vec(&module, &info, &spv_options, Some(&pipeline))
            .unwrap_or_else(|e| panic!("kernel {v} does not translate to SPIR-V: {e}"));
        assert_eq!(
            words.first(),
            Some(&0x0723_0203),
            "kernel {v}: SPIR-V magic"
        );
        // OpCapability CooperativeMatrixKHR (6022): the module asks the driver for the feature.
        let capability = |c: u32| words.windows(2).any(|w| w == [(2 << 16) | 17, c]);
        assert!(
            capability(6022),
            "kernel {v}: no CooperativeMatrixKHR capability"
        );

        if !v.source.contains("coop_mat8x8") {
            continue;
        }
        let src = write_msl(v, &module, &info, &ep, (2, 3));
        assert!(
            src.contains("simdgroup_"),
            "kernel {v}: no simdgroup matrix in MSL"
        );
        metal += 1;
    }
    assert!(metal >= 2, "{metal} cooperative variants translated to MSL");
}
