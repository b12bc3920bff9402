//! `iterinv-viewer`: an app that owns its wgpu device and lends it to iterinv. Open a photo (as
//! the argument, or drop it on the window), type a prompt, Enter inverts it through the cascade
//! while the window shows each stage's estimate converge; Ctrl+R then regenerates the images from
//! the inversion's artifacts alone, and a typed edit prompt with Ctrl+E edits the photo
//! (DiffEdit). Escape cancels. The title bar is the status line: stage, phase, step, loss.
//!
//! ```sh
//! cargo run --release -p iterinv-viewer -- tests/fixtures/photos/chelsea.png --steps 10
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use iterinv_viewer::{Settings, Viewer};
use winit::application::ApplicationHandler;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{Key, ModifiersState, NamedKey};
use winit::window::{Window, WindowId};

/// The window, its surface and the viewer, once the event loop has started.
struct Running {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    device: wgpu::Device,
    queue: wgpu::Queue,
    viewer: Viewer,
}

struct Shell {
    photo: Option<PathBuf>,
    settings: Settings,
    modifiers: ModifiersState,
    running: Option<Running>,
}

impl Shell {
    fn start(&mut self, event_loop: &ActiveEventLoop) -> Result<Running> {
        let attributes = Window::default_attributes()
            .with_title("iterinv viewer")
            .with_inner_size(winit::dpi::LogicalSize::new(1024.0, 512.0));
        let window = Arc::new(event_loop.create_window(attributes)?);
        let display = Box::new(event_loop.owned_display_handle());
        let instance = wgpu::Instance::new(
            wgpu::InstanceDescriptor::new_with_display_handle_from_env(display),
        );
        let surface = instance.create_surface(window.clone())?;
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            compatible_surface: Some(&surface),
            ..Default::default()
        }))?;
        // iterinv's kernels want the adapter's own limits (large storage buffers) and use f16
        // and subgroups where offered.
        let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP;
        let (device, queue) =
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("iterinv viewer"),
                required_features: adapter.features() & wanted,
                required_limits: adapter.limits(),
                ..Default::default()
            }))?;
        let size = window.inner_size();
        let mut config = surface
            .get_default_config(&adapter, size.width.max(1), size.height.max(1))
            .context("the surface does not work with this adapter")?;
        config.present_mode = wgpu::PresentMode::AutoVsync;
        surface.configure(&device, &config);
        let mut viewer = Viewer::new(
            &device,
            &queue,
            Some(adapter.get_info()),
            config.format,
            self.settings.clone(),
        );
        if let Some(photo) = &self.photo {
            viewer.open(photo)?;
        }
        Ok(Running {
            window,
            surface,
            config,
            device,
            queue,
            viewer,
        })
    }
}

impl ApplicationHandler for Shell {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.running.is_some() {
            return;
        }
        match self.start(event_loop) {
            Ok(r) => self.running = Some(r),
            Err(e) => {
                eprintln!("error: {e:#}");
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        let Some(r) = &mut self.running else {
            return;
        };
        let outcome = match event {
            WindowEvent::CloseRequested => {
                event_loop.exit();
                Ok(())
            }
            WindowEvent::Resized(size) => {
                r.config.width = size.width.max(1);
                r.config.height = size.height.max(1);
                r.surface.configure(&r.device, &r.config);
                Ok(())
            }
            WindowEvent::DroppedFile(path) => r.viewer.open(&path),
            WindowEvent::ModifiersChanged(m) => {
                self.modifiers = m.state();
                Ok(())
            }
            WindowEvent::KeyboardInput { event, .. } if event.state == ElementState::Pressed => {
                let ctrl = self.modifiers.control_key();
                match event.logical_key {
                    Key::Named(NamedKey::Enter) => r.viewer.invert(),
                    Key::Named(NamedKey::Escape) => {
                        r.viewer.cancel();
                        Ok(())
                    }
                    Key::Named(NamedKey::Backspace) => {
                        r.viewer.prompt.pop();
                        Ok(())
                    }
                    Key::Character(c) if ctrl && c.as_str() == "r" => r.viewer.reconstruct(),
                    Key::Character(c) if ctrl && c.as_str() == "e" => r.viewer.edit(),
                    _ => {
                        if let (Some(text), false) = (&event.text, ctrl) {
                            r.viewer.prompt.push_str(text);
                        }
                        Ok(())
                    }
                }
            }
            WindowEvent::RedrawRequested => redraw(r),
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            r.window.set_title(&format!("iterinv viewer: {e:#}"));
        } else {
            r.window.set_title(&format!(
                "iterinv viewer: {} | prompt: {}_",
                r.viewer.status(),
                r.viewer.prompt
            ));
        }
        if r.viewer.busy() {
            r.window.request_redraw();
        }
    }
}

fn redraw(r: &mut Running) -> Result<()> {
    let frame = match r.surface.get_current_texture() {
        wgpu::CurrentSurfaceTexture::Success(f) | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
        _ => {
            // Lost or outdated (a resize in flight): configure again, draw next time.
            r.surface.configure(&r.device, &r.config);
            r.window.request_redraw();
            return Ok(());
        }
    };
    let view = frame.texture.create_view(&Default::default());
    r.viewer.frame(&view, r.config.width, r.config.height);
    r.window.pre_present_notify();
    r.queue.present(frame);
    Ok(())
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mut settings = Settings::embedded()?;
    let mut photo = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--steps" => {
                settings.steps = args.next().context("--steps needs a number")?.parse()?;
            }
            "--inner-steps" => {
                let k = args
                    .next()
                    .context("--inner-steps needs a number")?
                    .parse()?;
                settings.inner_steps = Some(k);
            }
            "-h" | "--help" => {
                println!(
                    "iterinv-viewer [PHOTO] [--steps N] [--inner-steps K]\n\n\
                     Drop a photo on the window or give it; type a prompt; Enter inverts it \
                     through the built-in cascade, showing each stage's estimate as it \
                     converges. Ctrl+R reconstructs from the artifacts, Ctrl+E edits into the \
                     typed prompt, Escape cancels. The title bar is the status line."
                );
                return Ok(());
            }
            _ => photo = Some(PathBuf::from(arg)),
        }
    }
    let event_loop = EventLoop::new()?;
    let mut shell = Shell {
        photo,
        settings,
        modifiers: ModifiersState::empty(),
        running: None,
    };
    event_loop.run_app(&mut shell)?;
    Ok(())
}
