//! The viewer without a window: the test owns the device (as the app does), the viewer draws
//! into an offscreen target of the window's format instead of a surface, frame after frame, while
//! its inversion of the bundled photo runs through the built-in cascade. The pixels it presented
//! are read back and checked against the library's own results: the photo panel against the
//! photo as the last stage sees it, the result panel against the one-call inversion's final
//! reconstruction, bit for bit (the panels are the images' size, shown pixel for pixel).

use std::path::PathBuf;

use iterinv::image_io::{load_rgb, stage_tensor, to_rgb8, Fit};
use iterinv::pipeline::inversion::invert;
use iterinv::Gpu;
use iterinv_viewer::{Settings, Viewer};

const SIDE: u32 = 128;
const WIDTH: u32 = 2 * SIDE;
const HEIGHT: u32 = SIDE;

fn photo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/photos/chelsea.png")
}

/// The device an app would make (no surface).
fn device() -> (wgpu::Device, wgpu::Queue, wgpu::AdapterInfo) {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    (device, queue, adapter.get_info())
}

fn settings() -> Settings {
    Settings {
        steps: 3,
        inner_steps: Some(2),
        ..Settings::embedded().unwrap()
    }
}

#[path = "../../../tests/common/texels.rs"]
mod texels;

/// An offscreen target of `format`, the size of the test's window.
fn offscreen(device: &wgpu::Device, format: wgpu::TextureFormat) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some("offscreen frame"),
        size: wgpu::Extent3d {
            width: WIDTH,
            height: HEIGHT,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

/// The panel `panel` (0: left) of the frame, as RGB rows.
fn panel(frame: &[u8], panel: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for y in 0..SIDE {
        for x in panel * SIDE..(panel + 1) * SIDE {
            let i = ((y * WIDTH + x) * 4) as usize;
            out.extend_from_slice(&frame[i..i + 3]);
        }
    }
    out
}

#[test]
fn the_viewer_presents_the_inversion_the_library_computes() {
    let (device, queue, info) = device();
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let target = offscreen(&device, format);
    let view = target.create_view(&Default::default());
    let mut viewer = Viewer::new(&device, &queue, Some(info.clone()), format, settings());
    viewer.open(&photo()).unwrap();
    viewer.prompt = "a photo of a cat".into();
    viewer.invert().unwrap();

    // Frames until the inversion is done, each one event of it (an inner iteration at most).
    let mut frames = 0;
    let mut statuses = Vec::new();
    while viewer.busy() {
        viewer.frame(&view, WIDTH, HEIGHT);
        statuses.push(viewer.status().to_string());
        frames += 1;
        assert!(
            frames < 10_000,
            "the inversion never ended: {}",
            viewer.status()
        );
    }
    viewer.frame(&view, WIDTH, HEIGHT);
    let frame = texels::texels(&device, &queue, &target);
    assert!(
        viewer.status().starts_with("inverted"),
        "{}",
        viewer.status()
    );
    // The README's screenshot: ITERINV_VIEWER_SCREENSHOT=docs/viewer.png.
    if let Some(path) = std::env::var_os("ITERINV_VIEWER_SCREENSHOT") {
        image::RgbaImage::from_raw(WIDTH, HEIGHT, frame.clone())
            .unwrap()
            .save(path)
            .unwrap();
    }
    // Every stage's every phase was on screen as it ran.
    for stage in 1..=3 {
        assert!(
            statuses
                .iter()
                .any(|s| s.starts_with(&format!("stage {stage} "))),
            "stage {stage} never shown: {statuses:?}"
        );
    }
    assert!(statuses.iter().any(|s| s.contains("(inner 2)")));

    // The library's own result on the same device, from the file.
    let gpu = Gpu::from_device(
        device.clone(),
        queue.clone(),
        Some(info),
        Default::default(),
    );
    let opts = {
        let s = settings();
        let mut o = iterinv::pipeline::inversion::InvertOptions {
            prompt: "a photo of a cat".into(),
            stage1: s.stage1.clone(),
            steps: s.steps,
            ..Default::default()
        };
        o.stage1_settings.inner_steps = s.inner_steps;
        for f in &s.super_resolution {
            let mut stage = iterinv::pipeline::SrStage::with_defaults(f).unwrap();
            stage.settings.inner_steps = 2;
            o.super_resolution.push(stage);
        }
        o
    };
    let out = invert(&gpu, &photo(), &opts, &mut |_| Ok(())).unwrap();
    let last = &out.stages.last().unwrap().reconstruction;
    assert_eq!(last.shape(), &[1, 3, SIDE as usize, SIDE as usize]);
    let want = to_rgb8(last, 0).unwrap().data;
    assert_eq!(panel(&frame, 1), want, "the result panel");
    let shown = to_rgb8(viewer.shown().unwrap(), 0).unwrap().data;
    assert_eq!(shown, want);

    let rgb = load_rgb(&photo()).unwrap();
    let square = stage_tensor(&gpu, &rgb, "chelsea", SIDE as usize, Fit::CropCenter).unwrap();
    assert_eq!(
        panel(&frame, 0),
        to_rgb8(&square, 0).unwrap().data,
        "the photo panel"
    );
}

#[test]
fn escape_cancels_and_the_device_goes_on() {
    let (device, queue, info) = device();
    let format = wgpu::TextureFormat::Rgba8UnormSrgb;
    let target = offscreen(&device, format);
    let view = target.create_view(&Default::default());
    let mut viewer = Viewer::new(&device, &queue, Some(info), format, settings());
    // Without a photo, Enter says so.
    let e = viewer.invert().unwrap_err().to_string();
    assert!(e.contains("open a photo"), "{e}");
    viewer.open(&photo()).unwrap();
    viewer.prompt = "a photo of a cat".into();
    viewer.invert().unwrap();
    for _ in 0..5 {
        viewer.frame(&view, WIDTH, HEIGHT);
    }
    assert!(viewer.busy());
    viewer.cancel();
    assert!(!viewer.busy());
    assert_eq!(viewer.status(), "cancelled");
    // Drawing goes on; on an sRGB target the photo's bytes still come out as they are (the
    // shader decodes what the target encodes).
    viewer.frame(&view, WIDTH, HEIGHT);
    let frame = texels::texels(&device, &queue, &target);
    let gpu = Gpu::from_device(device.clone(), queue.clone(), None, Default::default());
    let rgb = load_rgb(&photo()).unwrap();
    let square = stage_tensor(&gpu, &rgb, "chelsea", SIDE as usize, Fit::CropCenter).unwrap();
    let want = to_rgb8(&square, 0).unwrap().data;
    let got = panel(&frame, 0);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    // The sRGB decode in the shader and the target's encode round to 8 bits: one level.
    assert!(worst <= 1, "the photo panel differs by {worst} levels");
}
