//! Photos in and images out as textures of a host application's own device (issue 15, item 1):
//! the test makes its device as an application would, adopts it with `Gpu::from_device`,
//! uploads the chelsea photo into a texture, inverts it through the texture path, writes each
//! reconstruction into a texture and reads that back itself: bit for bit what the file path
//! gives (`invert` on the PNG, then `to_rgb8`). The cascade is the tiny trained one, inverted
//! cheaply (DDIM at stage I, two fixed-point passes at the upper stages, 2 steps): what is
//! compared is the photo's way in and the images' way out, which every method shares.

mod common;

use std::path::{Path, PathBuf};

use common::fixtures;
use iterinv::image_io::{load_for_stage, resize_for_stage, to_rgb8, Fit};
use iterinv::pipeline::edit::{edit, edit_texture, DiffEditSettings, EditOptions};
use iterinv::pipeline::inversion::{invert_texture, InvertOptions, SrSettings, SrStage};
use iterinv::pipeline::{invert, SrMethod, Stage1Method};
use iterinv::texture::{create_texture, texture_to_rows, write_texture};
use iterinv::{Gpu, GpuOptions, Tensor};

/// The host application's device: its own instance, adapter and device (wgpu's default limits,
/// no features), adopted by iterinv in poison mode.
fn host_gpu() -> Gpu {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("an adapter (lavapipe in CI)");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let gpu = Gpu::from_device(
        device,
        queue,
        Some(adapter.get_info()),
        GpuOptions {
            poison: true,
            ..Default::default()
        },
    );
    assert!(gpu.info().adopted);
    gpu
}

fn chelsea() -> PathBuf {
    fixtures().join("photos/chelsea.png")
}

const RW: wgpu::TextureUsages = wgpu::TextureUsages::COPY_SRC.union(wgpu::TextureUsages::COPY_DST);

fn texture(gpu: &Gpu, format: wgpu::TextureFormat, (w, h): (u32, u32)) -> wgpu::Texture {
    gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: Some("host"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: RW,
        view_formats: &[],
    })
}

/// `texels` (rows packed, `bytes` per texel) uploaded into a new texture through the host's queue.
fn upload(
    gpu: &Gpu,
    format: wgpu::TextureFormat,
    (w, h): (u32, u32),
    texels: &[u8],
) -> wgpu::Texture {
    let t = texture(gpu, format, (w, h));
    let bytes = format.block_copy_size(None).unwrap();
    gpu.queue().write_texture(
        t.as_image_copy(),
        texels,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(w * bytes),
            rows_per_image: Some(h),
        },
        t.size(),
    );
    t
}

/// The photo's 8-bit RGBA texels, as an application decoding the PNG would upload them.
fn chelsea_rgba8() -> (Vec<u8>, (u32, u32)) {
    let img = image::open(chelsea()).unwrap().to_rgba8();
    let size = img.dimensions();
    (img.into_raw(), size)
}

/// An 8-bit texture's texels read back through the host's own encoder and queue: RGB bytes,
/// rows packed, after checking that alpha is opaque.
fn read_rgb8(gpu: &Gpu, t: &wgpu::Texture) -> Vec<u8> {
    let rgba = common::texels::texels(gpu.device(), gpu.queue(), t);
    assert!(rgba.chunks(4).all(|p| p[3] == 255), "alpha");
    rgba.chunks(4).flat_map(|p| p[..3].to_vec()).collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    let v = t.to_vec().unwrap();
    assert!(
        v.iter().all(|x| x.is_finite()),
        "{t:?} holds a NaN or an infinity"
    );
    v.iter().map(|x| x.to_bits()).collect()
}

/// The three stages of the built-in cascade, inverted cheaply.
fn options() -> InvertOptions {
    let stage = |name: &str| SrStage {
        folder: fixtures().join("trained_cascade").join(name),
        settings: SrSettings {
            method: SrMethod::FixedPoint,
            passes: 2,
            ..SrSettings::default()
        },
    };
    let mut opts = InvertOptions {
        prompt: "a photo of a cat".into(),
        stage1: fixtures().join("trained_cascade/stage1"),
        super_resolution: vec![stage("stage2"), stage("stage3")],
        steps: 2,
        ..InvertOptions::default()
    };
    opts.stage1_settings.method = Stage1Method::Ddim;
    opts
}

#[test]
fn a_photo_in_a_texture_inverts_as_its_file_and_comes_back_as_textures() {
    let gpu = host_gpu();
    let (texels, size) = chelsea_rgba8();
    let photo = upload(&gpu, wgpu::TextureFormat::Rgba8Unorm, size, &texels);
    let opts = options();
    let by_texture = invert_texture(&gpu, &photo, &chelsea(), &opts, &mut |_| Ok(())).unwrap();
    let by_file = invert(&gpu, &chelsea(), &opts, &mut |_| Ok(())).unwrap();

    assert_eq!(by_texture.stages.len(), 3);
    for (i, (t, f)) in by_texture.stages.iter().zip(&by_file.stages).enumerate() {
        let stage = i + 1;
        assert_eq!(
            bits(&t.input),
            bits(&f.input),
            "stage {stage}: the photo as it sees it"
        );
        assert_eq!(
            bits(&t.reconstruction),
            bits(&f.reconstruction),
            "stage {stage}: reconstruction"
        );
        // Out: into a texture of the reconstruction's size, read back here.
        let &[1, 3, h, w] = t.reconstruction.shape() else {
            panic!("stage {stage}: {:?}", t.reconstruction.shape())
        };
        let out = texture(&gpu, wgpu::TextureFormat::Rgba8Unorm, (w as u32, h as u32));
        write_texture(&t.reconstruction, &out).unwrap();
        let png = to_rgb8(&f.reconstruction, 0).unwrap();
        assert_eq!(
            read_rgb8(&gpu, &out),
            png.data,
            "stage {stage}: texture vs to_rgb8"
        );
        // A texture made for it, sRGB-tagged: the same bytes.
        let made = create_texture(
            &t.reconstruction,
            wgpu::TextureFormat::Rgba8UnormSrgb,
            wgpu::TextureUsages::COPY_SRC,
        )
        .unwrap();
        assert_eq!(
            read_rgb8(&gpu, &made),
            png.data,
            "stage {stage}: created texture"
        );
    }
    assert_eq!(
        by_texture.artifacts.meta.image,
        by_file.artifacts.meta.image
    );
    assert_eq!(
        by_texture.artifacts.tensors.keys().collect::<Vec<_>>(),
        by_file.artifacts.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &by_texture.artifacts.tensors {
        let f = &by_file.artifacts.tensors[name];
        let b = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(b(&t.data), b(&f.data), "artifact {name}");
    }

    // An edit of the photo in the texture: the file's edit, bit for bit.
    let mut edit_opts = EditOptions::new("a photo of a dog");
    edit_opts.settings = DiffEditSettings {
        steps: 10,
        maps: 2,
        ..DiffEditSettings::default()
    };
    let from_texture = edit_texture(
        &gpu,
        &by_file.artifacts,
        &photo,
        &edit_opts,
        &mut |_| Ok(()),
    )
    .unwrap();
    let from_file = edit(&gpu, &by_file.artifacts, &edit_opts, &mut |_| Ok(())).unwrap();
    assert_eq!(
        bits(&from_texture.input),
        bits(&from_file.input),
        "edit input"
    );
    assert_eq!(bits(&from_texture.mask), bits(&from_file.mask), "edit mask");
    assert_eq!(from_texture.images.len(), 3);
    for (i, (t, f)) in from_texture
        .images
        .iter()
        .zip(&from_file.images)
        .enumerate()
    {
        assert_eq!(bits(t), bits(f), "edited stage {}", i + 1);
    }
}

/// The same photo in the other formats, as each stage sees it: the -srgb texture holds the same
/// bytes, so the same bits. Float textures hold its linear light (the PNG's levels sRGB-decoded
/// here in f64), which the GPU's sRGB encode brings back to the PNG's values: within 4e-6 on
/// [−1, 1] for rgba32float (the pow's accuracy, see engine/tests/ops/texture.rs; the resize's
/// weights, Σ|w| ≤ 1.2, carry it over: 6e-6). rgba16float adds the rounding to halves: 2⁻¹¹·l
/// of a linear value l, which the encode turns into at most (1.055/2.4)·2⁻¹¹·l^0.417 ≤ 2.2e-4
/// of the colour (12.92·2⁻¹¹·l ≤ 2e-5 in its linear part), 4.4e-4 on [−1, 1], 5.3e-4 after the
/// resize: 1e-3.
#[test]
fn every_format_gives_the_photo_as_the_file_does() {
    let gpu = host_gpu();
    let (texels, size) = chelsea_rgba8();
    let fit = Fit::Stretch;
    let stage = |t: &wgpu::Texture| {
        resize_for_stage(&texture_to_rows(&gpu, t).unwrap(), "texture", 32, fit)
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let file = load_for_stage(&gpu, &chelsea(), 32, fit)
        .unwrap()
        .to_vec()
        .unwrap();
    let srgb = upload(&gpu, wgpu::TextureFormat::Rgba8UnormSrgb, size, &texels);
    let b = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(b(&stage(&srgb)), b(&file), "rgba8unorm-srgb");

    let decode = |v: f64| {
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let linear: Vec<f32> = texels
        .iter()
        .map(|&b| decode(b as f64 / 255.0) as f32)
        .collect();
    let f32s = upload(
        &gpu,
        wgpu::TextureFormat::Rgba32Float,
        size,
        &linear
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let halves: Vec<half::f16> = linear.iter().map(|&v| half::f16::from_f32(v)).collect();
    let f16s = upload(
        &gpu,
        wgpu::TextureFormat::Rgba16Float,
        size,
        &halves
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    for (name, t, tol) in [("rgba32float", &f32s, 6e-6), ("rgba16float", &f16s, 1e-3)] {
        let got = stage(t);
        let worst = got
            .iter()
            .zip(&file)
            .map(|(&g, &f)| {
                assert!(g.is_finite(), "{name}: {g}");
                (g - f).abs()
            })
            .fold(0.0, f32::max);
        eprintln!("{name}: stage tensor within {worst:.2e} of the file's");
        assert!(worst <= tol, "{name}: {worst} over {tol}");
    }
}

/// A texture without COPY_SRC cannot be a photo: the inversion says so before any work.
#[test]
fn a_texture_iterinv_cannot_read_is_an_error() {
    let gpu = host_gpu();
    let t = gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d {
            width: 192,
            height: 128,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::TEXTURE_BINDING,
        view_formats: &[],
    });
    let e = invert_texture(&gpu, &t, Path::new("frame"), &options(), &mut |_| Ok(()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("COPY_SRC"), "{e}");
    // Too small for the cascade (128 px at stage III): the size is checked first.
    let small = texture(&gpu, wgpu::TextureFormat::Rgba8Unorm, (100, 120));
    let e = invert_texture(
        &gpu,
        &small,
        Path::new("frame"),
        &options(),
        &mut |_| Ok(()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("image frame") && e.contains("at least 128"),
        "{e}"
    );
}
