//! Caches of compute pipelines (keyed by everything that changes the WGSL) and of bind groups (keyed
//! by the buffers bound), so a repeated step builds neither again.

use std::collections::HashMap;
use std::sync::Arc;

use iterinv_kernels::{assemble, Kernel, StorageType};

use crate::error::{Error, Result};
use crate::recorder::PARAMS_SLOT;

pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout_key: (usize, usize),
}

/// A buffer range bound to one slot: (pooled buffer id, offset, size) identifies it in the cache.
pub type BindingKey = (u64, u64, u64);

/// Bind groups beyond this many are dropped all at once (cheap to rebuild, bounded memory).
const MAX_BIND_GROUPS: usize = 8192;

#[derive(Default)]
pub struct PipelineCache {
    pipelines: HashMap<String, Arc<Pipeline>>,
    layouts: HashMap<(usize, usize), wgpu::BindGroupLayout>,
    bind_groups: HashMap<((usize, usize), Vec<BindingKey>), wgpu::BindGroup>,
    pub pipelines_built: u64,
}

fn layout_entries(n_inputs: usize, n_outputs: usize) -> Vec<wgpu::BindGroupLayoutEntry> {
    let storage = |binding: usize, read_only: bool| wgpu::BindGroupLayoutEntry {
        binding: binding as u32,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: None,
        },
        count: None,
    }];
    entries.extend((0..n_inputs).map(|i| storage(1 + i, true)));
    entries.extend((0..n_outputs).map(|i| storage(1 + n_inputs + i, false)));
    entries
}

impl PipelineCache {
    fn layout(&mut self, device: &wgpu::Device, key: (usize, usize)) -> &wgpu::BindGroupLayout {
        self.layouts.entry(key).or_insert_with(|| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &layout_entries(key.0, key.1),
            })
        })
    }

    /// The pipeline for `kernel` with these input storage types and constants, built on first use.
    pub fn pipeline(
        &mut self,
        device: &wgpu::Device,
        kernel: &'static Kernel,
        input_types: &[StorageType],
        constants: &[(&str, String)],
    ) -> Result<Arc<Pipeline>> {
        let key = format!("{}|{:?}|{:?}", kernel.name, input_types, constants);
        if let Some(p) = self.pipelines.get(&key) {
            return Ok(p.clone());
        }
        let source = assemble(kernel, input_types, constants).map_err(|e| Error::Kernel {
            kernel: kernel.name,
            detail: e.0,
        })?;
        let layout_key = (kernel.inputs.len(), kernel.outputs.len());
        let bgl = self.layout(device, layout_key).clone();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.name),
            layout: Some(&layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Kernel {
                kernel: kernel.name,
                detail: format!("{key}: {e}"),
            });
        }
        self.pipelines_built += 1;
        let p = Arc::new(Pipeline {
            pipeline,
            layout_key,
        });
        self.pipelines.insert(key, p.clone());
        Ok(p)
    }

    /// The bind group for `params` (the uniform arena, bound with a dynamic offset) and `buffers`
    /// (inputs then outputs).
    pub fn bind_group(
        &mut self,
        device: &wgpu::Device,
        layout_key: (usize, usize),
        params: &wgpu::Buffer,
        buffers: &[(&wgpu::Buffer, BindingKey)],
    ) -> Result<wgpu::BindGroup> {
        let key = (
            layout_key,
            buffers.iter().map(|(_, k)| *k).collect::<Vec<_>>(),
        );
        if let Some(bg) = self.bind_groups.get(&key) {
            return Ok(bg.clone());
        }
        if self.bind_groups.len() >= MAX_BIND_GROUPS {
            self.bind_groups.clear();
        }
        let layout = self.layout(device, layout_key).clone();
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: params,
                offset: 0,
                size: wgpu::BufferSize::new(PARAMS_SLOT),
            }),
        }];
        for (i, (buffer, (_, offset, size))) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: 1 + i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: *offset,
                    size: wgpu::BufferSize::new(*size),
                }),
            });
        }
        let scopes = crate::fault::Scopes::push(device);
        let bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        if let Some(f) = scopes.pop("binding buffers") {
            return Err(f.to_error());
        }
        self.bind_groups.insert(key, bg.clone());
        Ok(bg)
    }

    pub fn clear_bind_groups(&mut self) {
        self.bind_groups.clear();
    }
}
