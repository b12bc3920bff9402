//! Images to and from textures (ops::texture) in all four formats, against CPU computations of
//! what their texels mean: 8-bit texels are a PNG's bytes (read as image_io decodes them, written
//! as image_io::to_rgb8 quantizes: exactly), float texels linear light (sRGB transfer in f64, within
//! the GPU's pow accuracy and f16 rounding). At 37×23, so no row is a multiple of the 256-byte copy
//! alignment. Also: what a shader samples from each format, textures larger than a binding (in
//! bands), and the errors.

#[path = "../../../tests/common/texels.rs"]
mod texels;

use half::f16;
use iterinv_engine::ops::texture::{
    create_texture, texture_to_rows, texture_to_tensor, write_texture,
};
use iterinv_engine::{Gpu, GpuOptions, Tensor};

use crate::common::{assert_close, gpu, Rng};

const W: u32 = 37;
const H: u32 = 23;
const ALL: wgpu::TextureUsages = wgpu::TextureUsages::COPY_SRC
    .union(wgpu::TextureUsages::COPY_DST)
    .union(wgpu::TextureUsages::TEXTURE_BINDING);

fn texture(
    gpu: &Gpu,
    format: wgpu::TextureFormat,
    (w, h): (u32, u32),
    usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: Some("test"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage,
        view_formats: &[],
    })
}

fn bytes_per_texel(t: &wgpu::Texture) -> u32 {
    t.format().block_copy_size(None).unwrap()
}

/// Fill `t` with packed texels through the host's queue, as an application would.
fn put(gpu: &Gpu, t: &wgpu::Texture, texels: &[u8]) {
    gpu.queue().write_texture(
        t.as_image_copy(),
        texels,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(t.width() * bytes_per_texel(t)),
            rows_per_image: Some(t.height()),
        },
        t.size(),
    );
}

/// Read `t`'s texels back through the host's own encoder and queue (rows packed).
fn get(gpu: &Gpu, t: &wgpu::Texture) -> Vec<u8> {
    texels::texels(gpu.device(), gpu.queue(), t)
}

/// What image_io gives for an 8-bit level: the image crate's b/255, then 2v − 1, in f32.
fn from_level(b: u8) -> f32 {
    (b as f32 / 255.0) * 2.0 - 1.0
}

/// image_io::to_rgb8's quantization, as written there.
fn to_level(x: f32) -> u8 {
    let v = (x / 2.0 + 0.5).clamp(0.0, 1.0);
    (v * 255.0).round() as u8
}

fn srgb_encode(l: f64) -> f64 {
    let l = l.clamp(0.0, 1.0);
    if l <= 0.0031308 {
        12.92 * l
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    }
}

fn srgb_decode(v: f64) -> f64 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// An image tensor's colour in [0, 1], in f32 as the kernel computes it (x·0.5 is exact), NaN
/// taken as 0.
fn unit(x: f32) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        (x * 0.5 + 0.5).clamp(0.0, 1.0) as f64
    }
}

/// Planar `[3, H, W]` values: random, plus what must not break the conversions (NaN, ±∞, far
/// outside [−1, 1], the ends) and, for 8-bit writes, values whose ·255 lands exactly on a half
/// level (where round-half-to-even and Rust's round differ).
fn image_values(seed: u64) -> Vec<f32> {
    let n = (3 * W * H) as usize;
    let mut v = Rng::new(seed).vec(n, -1.2, 1.2);
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -1.0,
        1.0,
        0.0,
        -0.0,
        7.0,
        -7.0,
    ];
    v[..specials.len()].copy_from_slice(&specials);
    let mut at = specials.len();
    for k in 0..255u32 {
        // The f32 colours near (k + ½)/255 whose product with 255 rounds to exactly k + ½.
        let mid = (k as f32 + 0.5) / 255.0;
        let mut c = f32::from_bits(mid.to_bits() - 4);
        for _ in 0..8 {
            if c * 255.0 == k as f32 + 0.5 && at < n {
                v[at] = (c - 0.5) * 2.0;
                // Only colours that x/2 + 0.5 gives back exactly test the tie.
                if v[at] / 2.0 + 0.5 == c {
                    at += 1;
                }
            }
            c = f32::from_bits(c.to_bits() + 1);
        }
    }
    assert!(at > specials.len() + 50, "only {at} half levels found");
    v
}

fn tensor(gpu: &Gpu, values: &[f32]) -> Tensor {
    Tensor::from_f32(gpu, &[1, 3, H as usize, W as usize], values).unwrap()
}

#[test]
fn eight_bit_texels_read_exactly_as_a_pngs_bytes() {
    let gpu = gpu();
    let n = (W * H) as usize;
    // Every level in each channel, alpha anything.
    let mut texels = vec![0u8; 4 * n];
    let mut rng = Rng::new(7);
    for (i, t) in texels.chunks_mut(4).enumerate() {
        t[0] = i as u8;
        t[1] = (i * 7 + 3) as u8;
        t[2] = 255 - i as u8;
        t[3] = rng.next_u64() as u8;
    }
    for format in [
        wgpu::TextureFormat::Rgba8Unorm,
        wgpu::TextureFormat::Rgba8UnormSrgb,
    ] {
        let t = texture(gpu, format, (W, H), ALL);
        put(gpu, &t, &texels);
        let x = texture_to_tensor(gpu, &t).unwrap();
        assert_eq!(x.shape(), &[1, 3, H as usize, W as usize]);
        let want: Vec<f64> = (0..3)
            .flat_map(|c| (0..n).map(move |i| 4 * i + c))
            .map(|k| from_level(texels[k]) as f64)
            .collect();
        assert_close(&format!("{format:?} read"), &x, &want, 0.0, 0.0);
    }
}

#[test]
fn float_texels_read_as_linear_light_srgb_encoded() {
    let gpu = gpu();
    let n = (W * H) as usize;
    let mut rng = Rng::new(8);
    // Linear values over [−0.2, 1.2] (clamped), then NaN and ±∞ in the first texels.
    let mut linear: Vec<f32> = rng.vec(4 * n, -0.2, 1.2);
    linear[..4].copy_from_slice(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.5]);
    linear[4..8].copy_from_slice(&[0.0031308, 0.003, 1e-6, 1.0]);
    let expected = |l: &[f64]| -> Vec<f64> {
        (0..3)
            .flat_map(|c| (0..n).map(move |i| (c, i)))
            .map(|(c, i)| {
                let v = l[4 * i + c];
                2.0 * srgb_encode(if v.is_nan() { 0.0 } else { v }) - 1.0
            })
            .collect()
    };
    // The GPU's pow (exp2 ∘ log2, a few ULP, and log2 to 2⁻²¹ absolute near 1) moves the encoded
    // value by up to about 1.6e-6; 2v − 1 doubles it.
    let tol = 4e-6;
    let t = texture(gpu, wgpu::TextureFormat::Rgba32Float, (W, H), ALL);
    put(gpu, &t, bytemuck::cast_slice(&linear));
    let l64: Vec<f64> = linear.iter().map(|&v| v as f64).collect();
    assert_close(
        "rgba32float read",
        &texture_to_tensor(gpu, &t).unwrap(),
        &expected(&l64),
        tol,
        0.0,
    );

    // Halves: their values exactly, subnormals included; a NaN half reads as 0.
    let mut halves: Vec<f16> = linear.iter().map(|&v| f16::from_f32(v)).collect();
    halves[8] = f16::from_f32(3e-6); // subnormal
    halves[9] = f16::NAN;
    let t = texture(gpu, wgpu::TextureFormat::Rgba16Float, (W, H), ALL);
    put(gpu, &t, bytemuck::cast_slice(&halves));
    let h64: Vec<f64> = halves.iter().map(|v| v.to_f64()).collect();
    assert_close(
        "rgba16float read",
        &texture_to_tensor(gpu, &t).unwrap(),
        &expected(&h64),
        tol,
        0.0,
    );
}

#[test]
fn eight_bit_writes_quantize_as_to_rgb8() {
    let gpu = gpu();
    let values = image_values(9);
    let x = tensor(gpu, &values);
    let n = (W * H) as usize;
    for format in [
        wgpu::TextureFormat::Rgba8Unorm,
        wgpu::TextureFormat::Rgba8UnormSrgb,
    ] {
        let t = texture(gpu, format, (W, H), ALL);
        write_texture(&x, &t).unwrap();
        let got = get(gpu, &t);
        for i in 0..n {
            for c in 0..3 {
                let v = values[c * n + i];
                assert_eq!(
                    got[4 * i + c],
                    to_level(v),
                    "{format:?} texel {i} channel {c}: {v}"
                );
            }
            assert_eq!(got[4 * i + 3], 255, "{format:?} alpha");
        }
    }
}

#[test]
fn float_writes_hold_linear_light() {
    let gpu = gpu();
    let values = image_values(10);
    let x = tensor(gpu, &values);
    let n = (W * H) as usize;
    let linear = |i: usize, c: usize| srgb_decode(unit(values[c * n + i]));
    // pow((v + 0.055)/1.055, 2.4) on the GPU: the rounding of its base (3.5 ULP) times 2.4, log2
    // (2⁻²¹ absolute) times 2.4 and exp2 (about 20 ULP at 2⁻⁸): at most about 3e-6 of the value.
    let rel = 4e-6;
    let t = texture(gpu, wgpu::TextureFormat::Rgba32Float, (W, H), ALL);
    write_texture(&x, &t).unwrap();
    let got: Vec<f32> = bytemuck::pod_collect_to_vec(&get(gpu, &t));
    for i in 0..n {
        for c in 0..3 {
            let (g, want) = (got[4 * i + c] as f64, linear(i, c));
            assert!(
                (g - want).abs() <= rel * want + 1e-12,
                "rgba32float texel {i}.{c}: {g} vs {want}"
            );
        }
        assert_eq!(got[4 * i + 3], 1.0);
    }
    // Halves: the nearest half to the value, so within half a half-ULP (2⁻²⁵ below 2⁻¹⁴).
    let t = texture(gpu, wgpu::TextureFormat::Rgba16Float, (W, H), ALL);
    write_texture(&x, &t).unwrap();
    let got: Vec<f16> = bytemuck::pod_collect_to_vec(&get(gpu, &t));
    let half_ulp = |v: f64| {
        let e = v.max(2f64.powi(-14)).log2().floor();
        2f64.powf(e - 11.0)
    };
    for i in 0..n {
        for c in 0..3 {
            let (g, want) = (got[4 * i + c].to_f64(), linear(i, c));
            let tol = half_ulp(g.max(want)) + rel * want;
            assert!(
                (g - want).abs() <= tol,
                "rgba16float texel {i}.{c}: {g} vs {want}"
            );
        }
        assert_eq!(got[4 * i + 3], f16::ONE);
    }
}

/// What the host's shaders see: textureLoad of the same image written to each format. The
/// -srgb, rgba16float and rgba32float textures load the same linear colour (the 8-bit one within
/// its quantization: half a level, times the sRGB decode's slope of at most 2.28, is 0.0045);
/// rgba8unorm loads the sRGB-encoded values themselves (the PNG's bytes / 255).
#[test]
fn shaders_sample_the_same_colour_from_every_format() {
    let gpu = gpu();
    let values = Rng::new(11).vec((3 * W * H) as usize, -1.0, 1.0);
    let x = tensor(gpu, &values);
    let load = |format| {
        let t = create_texture(&x, format, wgpu::TextureUsages::TEXTURE_BINDING).unwrap();
        texel_loads(gpu, &t)
    };
    let f32s = load(wgpu::TextureFormat::Rgba32Float);
    let f16s = load(wgpu::TextureFormat::Rgba16Float);
    let srgb = load(wgpu::TextureFormat::Rgba8UnormSrgb);
    let unorm = load(wgpu::TextureFormat::Rgba8Unorm);
    let n = (W * H) as usize;
    for i in 0..n {
        for c in 0..4 {
            let linear = if c == 3 {
                1.0
            } else {
                srgb_decode(unit(values[c * n + i]))
            };
            let (a, b, s) = (
                f32s[4 * i + c] as f64,
                f16s[4 * i + c] as f64,
                srgb[4 * i + c] as f64,
            );
            assert!(
                (a - linear).abs() <= 4e-6 * linear + 1e-12,
                "f32 {i}.{c}: {a} vs {linear}"
            );
            assert!(
                (b - linear).abs() <= 1e-3 * linear + 3e-8,
                "f16 {i}.{c}: {b} vs {linear}"
            );
            assert!((s - linear).abs() <= 0.005, "srgb {i}.{c}: {s} vs {linear}");
            let encoded = if c == 3 { 1.0 } else { unit(values[c * n + i]) };
            let u = unorm[4 * i + c] as f64;
            assert!(
                (u - encoded).abs() <= 0.5 / 255.0 + 1e-6,
                "unorm {i}.{c}: {u} vs {encoded}"
            );
        }
    }
}

/// textureLoad of every texel of `t`, as the host's shader would, read back.
fn texel_loads(gpu: &Gpu, t: &wgpu::Texture) -> Vec<f32> {
    let device = gpu.device();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(
            "@group(0) @binding(0) var tex: texture_2d<f32>;
             @group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
             @compute @workgroup_size(1)
             fn main(@builtin(workgroup_id) id: vec3<u32>) {
                 let w = textureDimensions(tex).x;
                 out[id.x] = textureLoad(tex, vec2<u32>(id.x % w, id.x / w), 0);
             }"
            .into(),
        ),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let n = (t.width() * t.height()) as u64;
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16 * n,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::TextureView(&t.create_view(&Default::default())),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: out.as_entire_binding(),
            },
        ],
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16 * n,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(n as u32, 1, 1);
    }
    enc.copy_buffer_to_buffer(&out, 0, &staging, 0, 16 * n);
    gpu.queue().submit([enc.finish()]);
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.unwrap());
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let v = bytemuck::pod_collect_to_vec(&staging.slice(..).get_mapped_range().unwrap());
    v
}

/// On a device whose storage bindings hold a few rows, a texture is read in bands into a photo
/// split over buffers, and written in bands: the same values, bit for bit, as in one piece.
#[test]
fn textures_larger_than_a_binding_go_in_bands() {
    let gpu = gpu();
    let n = (W * H) as usize;
    let linear: Vec<f32> = Rng::new(12).vec(4 * n, 0.0, 1.0);
    let read = |g: &Gpu| {
        let t = texture(g, wgpu::TextureFormat::Rgba32Float, (W, H), ALL);
        put(g, &t, bytemuck::cast_slice(&linear));
        t
    };
    let whole = texture_to_tensor(gpu, &read(gpu))
        .unwrap()
        .to_vec()
        .unwrap();
    // Rows of the photo are 444 bytes (9 a buffer), rows of rgba32float texels 768 (5 a copy).
    let small = Gpu::with_options(GpuOptions {
        poison: true,
        max_binding_size: Some(4096),
        ..Default::default()
    })
    .unwrap();
    let t = read(&small);
    let e = texture_to_tensor(&small, &t).unwrap_err().to_string();
    assert!(e.contains("texture_to_tensor") && e.contains("4096"), "{e}");
    let rows = texture_to_rows(&small, &t).unwrap();
    assert!(rows.is_chunked());
    assert!(rows.guards_intact().unwrap());
    let rows = rows.to_vec().unwrap();
    let (w, h) = (W as usize, H as usize);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let (a, b) = (rows[(y * 3 + c) * w + x], whole[(c * h + y) * w + x]);
                assert!(
                    a.is_finite() && a.to_bits() == b.to_bits(),
                    "({c}, {y}, {x}): {a} vs {b}"
                );
            }
        }
    }
    // The image fits a 16 KiB binding, its 23 rows of texels (17,664 bytes) do not.
    let medium = Gpu::with_options(GpuOptions {
        poison: true,
        max_binding_size: Some(16 * 1024),
        ..Default::default()
    })
    .unwrap();
    let values = image_values(13);
    let written = |g: &Gpu| {
        let t = texture(g, wgpu::TextureFormat::Rgba32Float, (W, H), ALL);
        write_texture(&tensor(g, &values), &t).unwrap();
        get(g, &t)
    };
    assert_eq!(written(&medium), written(gpu));
}

/// The image is resized on the GPU when the texture's size differs: the same as resizing first.
#[test]
fn writes_resize_to_the_textures_size() {
    use iterinv_engine::ops::resample::{resample, Filter, Window};
    let gpu = gpu();
    let values = image_values(14);
    let x = tensor(gpu, &values);
    let (tw, th) = (16u32, 40u32);
    let t = texture(gpu, wgpu::TextureFormat::Rgba32Float, (tw, th), ALL);
    write_texture(&x, &t).unwrap();
    let whole = Window {
        top: 0,
        left: 0,
        height: H as usize,
        width: W as usize,
    };
    let resized = resample(
        &x,
        whole,
        &Filter::bicubic(H as usize, th as usize),
        &Filter::bicubic(W as usize, tw as usize),
    )
    .unwrap();
    let direct = texture(gpu, wgpu::TextureFormat::Rgba32Float, (tw, th), ALL);
    write_texture(&resized, &direct).unwrap();
    assert_eq!(get(gpu, &t), get(gpu, &direct));
}

#[test]
fn bad_textures_and_images_are_errors_naming_what_is_wrong() {
    let gpu = gpu();
    let x = tensor(gpu, &image_values(15));
    let rgba8 = wgpu::TextureFormat::Rgba8Unorm;
    let no_src = texture(gpu, rgba8, (W, H), wgpu::TextureUsages::COPY_DST);
    let e = texture_to_tensor(gpu, &no_src).unwrap_err().to_string();
    assert!(e.contains("lacks the COPY_SRC usage"), "{e}");
    let no_dst = texture(gpu, rgba8, (W, H), wgpu::TextureUsages::COPY_SRC);
    let e = write_texture(&x, &no_dst).unwrap_err().to_string();
    assert!(e.contains("lacks the COPY_DST usage"), "{e}");
    for format in [
        wgpu::TextureFormat::Bgra8Unorm,
        wgpu::TextureFormat::R32Float,
        wgpu::TextureFormat::Rgba16Unorm,
    ] {
        if !gpu
            .device()
            .features()
            .contains(wgpu::Features::TEXTURE_FORMAT_16BIT_NORM)
            && format == wgpu::TextureFormat::Rgba16Unorm
        {
            continue;
        }
        let t = texture(gpu, format, (W, H), ALL);
        let e = texture_to_tensor(gpu, &t).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{format:?} is not one iterinv converts")),
            "{e}"
        );
        let e = write_texture(&x, &t).unwrap_err().to_string();
        assert!(e.contains("is not one iterinv converts"), "{e}");
        let e = create_texture(&x, format, ALL).unwrap_err().to_string();
        assert!(e.contains("is not a format iterinv converts"), "{e}");
    }
    let volume = gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: 4,
            height: 4,
            depth_or_array_layers: 4,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format: rgba8,
        usage: ALL,
        view_formats: &[],
    });
    let e = texture_to_tensor(gpu, &volume).unwrap_err().to_string();
    assert!(e.contains("D3") && e.contains("2D single-sampled"), "{e}");
    let t = texture(gpu, rgba8, (W, H), ALL);
    let grey = Tensor::from_f32(gpu, &[1, 1, 4, 4], &[0.0; 16]).unwrap();
    let e = write_texture(&grey, &t).unwrap_err().to_string();
    assert!(e.contains("[1, 3, H, W]"), "{e}");
    let e = create_texture(&grey, rgba8, ALL).unwrap_err().to_string();
    assert!(e.contains("[1, 3, H, W]"), "{e}");
}
