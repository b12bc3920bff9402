//! The viewer's one render pass: two square panels side by side on a dark background, the photo
//! on the left and the current image (a preview, then the result) on the right, each texture
//! shown pixel for pixel (nearest neighbour), so that a texture of the panel's size appears
//! exactly as it is — what the headless test checks.

const SHADER: &str = r#"
struct Params { side: u32, srgb_target: u32, has_right: u32, pad: u32 }

@group(0) @binding(0) var left: texture_2d<f32>;
@group(0) @binding(1) var right: texture_2d<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    // One triangle covering the target.
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
}

// The texel of `t` under the panel pixel `p` (nearest neighbour).
fn texel(t: texture_2d<f32>, p: vec2<u32>) -> vec3<f32> {
    let size = textureDimensions(t);
    let src = min(p * size / vec2<u32>(params.side), size - 1u);
    return textureLoad(t, src, 0).rgb;
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    return select(pow((c + 0.055) / 1.055, vec3<f32>(2.4)), c / 12.92, c <= vec3<f32>(0.04045));
}

@fragment
fn fs(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let p = vec2<u32>(pos.xy);
    let panel = p.x / params.side;
    let local = vec2<u32>(p.x % params.side, p.y);
    var c = vec3<f32>(0.08, 0.08, 0.09);
    if (p.y < params.side && panel == 0u) {
        c = texel(left, local);
    } else if (p.y < params.side && panel == 1u && params.has_right == 1u) {
        c = texel(right, local);
    }
    // The textures hold sRGB-encoded values (as a PNG does); an sRGB target encodes on write.
    if (params.srgb_target == 1u) {
        c = srgb_to_linear(c);
    }
    return vec4<f32>(c, 1.0);
}
"#;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    side: u32,
    srgb_target: u32,
    has_right: u32,
    pad: u32,
}

/// The render pipeline and what it binds.
pub struct Draw {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    /// Bound where a panel has no texture yet.
    blank: wgpu::TextureView,
    /// The frame's [`Params`], rewritten each frame (one buffer for the viewer's life).
    uniform: wgpu::Buffer,
    srgb_target: bool,
}

impl Draw {
    pub fn new(device: &wgpu::Device, target: wgpu::TextureFormat) -> Draw {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("viewer"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("viewer"),
            entries: &[
                texture_entry(0),
                texture_entry(1),
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("viewer"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("viewer"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs"),
                compilation_options: Default::default(),
                targets: &[Some(target.into())],
            }),
            primitive: Default::default(),
            depth_stencil: None,
            multisample: Default::default(),
            multiview_mask: None,
            cache: None,
        });
        let blank = device
            .create_texture(&wgpu::TextureDescriptor {
                label: Some("viewer blank"),
                size: wgpu::Extent3d {
                    width: 1,
                    height: 1,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba8Unorm,
                usage: wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            })
            .create_view(&Default::default());
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("viewer params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Draw {
            pipeline,
            layout,
            blank,
            uniform,
            srgb_target: target.is_srgb(),
        }
    }

    /// Draw the panels, each `side` pixels square, into `target`, and submit.
    pub fn frame(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target: &wgpu::TextureView,
        side: u32,
        left: Option<&wgpu::Texture>,
        right: Option<&wgpu::Texture>,
    ) {
        let params = Params {
            side: side.max(1),
            srgb_target: self.srgb_target as u32,
            has_right: right.is_some() as u32,
            pad: 0,
        };
        queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&params));
        let view = |t: Option<&wgpu::Texture>| t.map(|t| t.create_view(&Default::default()));
        let (left, right) = (view(left), view(right));
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("viewer"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(
                        left.as_ref().unwrap_or(&self.blank),
                    ),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(
                        right.as_ref().unwrap_or(&self.blank),
                    ),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: self.uniform.as_entire_binding(),
                },
            ],
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("viewer"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: target,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                ..Default::default()
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.draw(0..3, 0..1);
        }
        queue.submit([encoder.finish()]);
    }
}
