//! Frame-driven sessions: a long inversion, reconstruction or generation done a bounded slice at
//! a time, so that a host's render loop keeps its frame rate while the work runs on the same GPU.
//!
//! A [`Session`] runs the one-call function ([`inversion()`]: [`inversion::invert_rgb`];
//! [`reconstruction`]: [`inversion::reconstruct`]; [`generation`]: [`cascade::generate`]) as a
//! coroutine: the function's progress events are its pause points. [`Session::step`] lets it run to the next pause point the host asked
//! for (one inner iteration of NTI or IterInv, or one timestep), submits the work recorded so
//! far to the GPU without waiting for it, and returns the [`Event`] it paused at, with a preview
//! of the active stage's current estimate of its image if asked. Dropping or
//! [`Session::cancel`]ling a session stops the work at its pause point: its models and tensors
//! are freed and nothing is written. Stepped to the end, a session gives exactly what the
//! one-call function gives on the same device: it is that function's code.
//!
//! The coroutine's stack is a worker thread that only runs while [`Session::step`] waits for it,
//! so iterinv's GPU work never overlaps the host's own calls on the stepping thread. What the
//! work does on the host's device (a [`Gpu`] made with [`Gpu::from_device`]): it creates
//! buffers (pooled by iterinv, reused across steps, freed when the session and the tensors it
//! returned are dropped), compute pipelines and bind groups (cached on the `Gpu`), and command
//! encoders; it submits compute passes and buffer copies on the host's queue, a few per step
//! (at most 1,024 dispatches each), and reads back a few scalars (losses) where a method needs
//! them, which waits for the queue. It never touches the host's surfaces, textures or render
//! passes. A `Session` is `Send`: step it from any one thread at a time.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use iterinv_engine::Error;
use iterinv_models::Result;

use crate::image_io::Rgb;
use crate::pipeline::cascade::{self, CascadeOptions, CascadeOutput};
use crate::pipeline::inversion::{
    self, Artifacts, Event, FolderOverrides, InvertOptions, InvertOutput,
};
use crate::pipeline::NoiseSource;
use crate::{Gpu, Tensor};

/// How much work one [`Session::step`] does at most.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Slice {
    /// Up to the next event: an inner iteration of NTI or IterInv (one guided UNet pass forward
    /// and back), a timestep of the other loops, or a phase's start (models loaded).
    #[default]
    Event,
    /// Up to the end of the current timestep (NTI: its 51 Adam steps and its guided step).
    Timestep,
}

/// What the host asks of one [`Session::step`].
#[derive(Clone, Copy, Debug, Default)]
pub struct StepRequest {
    pub slice: Slice,
    /// Return a preview of the active stage's current estimate (for the upscaler stage this
    /// costs one VAE decode).
    pub preview: bool,
}

/// Where a session stands after a step.
#[derive(Clone, Debug)]
pub enum StepOutcome {
    /// Paused at `event`; `preview` is the current estimate as an image `[1, 3, H, W]` in
    /// [−1, 1], when asked and the phase has one.
    Paused {
        event: Event,
        preview: Option<Tensor>,
    },
    /// The work is done (or failed): [`Session::finish`] returns its result.
    Finished,
}

/// What the worker tells the stepping thread.
enum Report<T> {
    Paused {
        event: Event,
        preview: Option<Result<Tensor>>,
    },
    Finished(Result<T>),
}

/// A long piece of work, stepped by the host (see the module docs).
pub struct Session<T: Send + 'static> {
    /// Wakes the worker for its next slice; dropped to cancel.
    resume: Option<Sender<StepRequest>>,
    reports: Receiver<Report<T>>,
    worker: Option<JoinHandle<()>>,
    /// Boxed, so that a session is small whatever it returns (an app holds them in an enum).
    outcome: Option<Box<Result<T>>>,
    gpu: Gpu,
}

/// The error a cancelled session's work stops with.
fn cancelled() -> Error {
    Error::Interrupted("the session was cancelled".into())
}

impl<T: Send + 'static> Session<T> {
    /// A session that will run `work` (nothing runs until the first [`Self::step`]); `work`
    /// reports through the progress function it is given, whose calls are the pause points.
    pub fn new<F>(gpu: &Gpu, work: F) -> Session<T>
    where
        F: FnOnce(&mut dyn FnMut(&Event) -> iterinv_engine::Result<()>) -> Result<T>
            + Send
            + 'static,
    {
        let (resume, wake) = channel::<StepRequest>();
        let (report, reports) = channel::<Report<T>>();
        let worker_gpu = gpu.clone();
        let worker = std::thread::Builder::new()
            .name("iterinv session".into())
            .spawn(move || {
                // Cancelled before the first step: nothing runs.
                let Ok(mut request) = wake.recv() else {
                    return;
                };
                let mut pause = |e: &Event| -> iterinv_engine::Result<()> {
                    if request.slice == Slice::Timestep && e.inner.is_some() {
                        return Ok(());
                    }
                    let preview = match (&e.estimate, request.preview) {
                        (Some(estimate), true) => Some(estimate.image()),
                        _ => None,
                    };
                    // Let the slice's work run while the host renders.
                    worker_gpu.flush();
                    let event = Event {
                        estimate: None,
                        ..e.clone()
                    };
                    report
                        .send(Report::Paused { event, preview })
                        .map_err(|_| cancelled())?;
                    request = wake.recv().map_err(|_| cancelled())?;
                    Ok(())
                };
                let outcome = work(&mut pause);
                worker_gpu.flush();
                let _ = report.send(Report::Finished(outcome));
            })
            .expect("spawning a session's worker thread");
        Session {
            resume: Some(resume),
            reports,
            worker: Some(worker),
            outcome: None,
            gpu: gpu.clone(),
        }
    }

    /// Run the work to its next pause point (see [`StepRequest`]); once it is done, every step
    /// returns [`StepOutcome::Finished`].
    pub fn step(&mut self, request: StepRequest) -> Result<StepOutcome> {
        if self.outcome.is_some() {
            return Ok(StepOutcome::Finished);
        }
        let Some(resume) = &self.resume else {
            return Err(cancelled().into());
        };
        if resume.send(request).is_err() {
            return self.worker_died();
        }
        match self.reports.recv() {
            Ok(Report::Paused { event, preview }) => Ok(StepOutcome::Paused {
                event,
                preview: preview.transpose()?,
            }),
            Ok(Report::Finished(outcome)) => {
                self.outcome = Some(Box::new(outcome));
                self.join();
                Ok(StepOutcome::Finished)
            }
            Err(_) => self.worker_died(),
        }
    }

    /// Whether the work is done (its result waits in [`Self::finish`]).
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// The work's result, running what is left of it first.
    pub fn finish(mut self) -> Result<T> {
        while self.outcome.is_none() {
            self.step(StepRequest {
                slice: Slice::Timestep,
                preview: false,
            })?;
        }
        *self.outcome.take().expect("a finished session's outcome")
    }

    /// Stop the work at its pause point and free what it holds (the same as dropping the
    /// session, made explicit). Nothing it would have written is written.
    pub fn cancel(self) {
        drop(self);
    }

    /// The device the work runs on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The worker is gone without a result: it panicked (the panic's message is returned).
    fn worker_died(&mut self) -> Result<StepOutcome> {
        self.resume = None;
        let detail = match self.worker.take().map(JoinHandle::join) {
            Some(Err(panic)) => panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into()),
            _ => "it stopped without a result".into(),
        };
        Err(Error::Gpu {
            what: "a session's work",
            detail,
        }
        .into())
    }

    fn join(&mut self) {
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl<T: Send + 'static> Drop for Session<T> {
    /// Cancels unfinished work: the worker's pause point returns `Interrupted`, its function
    /// unwinds and frees its models and tensors, and the thread is joined.
    fn drop(&mut self) {
        self.resume = None;
        self.join();
    }
}

/// A generation ([`cascade::generate`]) as a session, drawing its noise from `noise` (e.g.
/// [`crate::pipeline::SeededNoise`]).
pub fn generation(
    gpu: &Gpu,
    opts: CascadeOptions,
    mut noise: Box<dyn NoiseSource + Send>,
) -> Session<CascadeOutput> {
    let worker_gpu = gpu.clone();
    Session::new(gpu, move |progress| {
        cascade::generate(&worker_gpu, &opts, &mut *noise, progress)
    })
}

/// An inversion ([`inversion::invert_rgb`]) as a session.
pub fn inversion(
    gpu: &Gpu,
    photo: Rgb,
    origin: std::path::PathBuf,
    opts: InvertOptions,
) -> Session<InvertOutput> {
    let worker_gpu = gpu.clone();
    Session::new(gpu, move |progress| {
        inversion::invert_rgb(&worker_gpu, &photo, &origin, &opts, progress)
    })
}

/// A reconstruction from saved artifacts ([`inversion::reconstruct`]) as a session; its result
/// is each stage's image.
pub fn reconstruction(
    gpu: &Gpu,
    artifacts: Artifacts,
    folders: FolderOverrides,
) -> Session<Vec<Tensor>> {
    let worker_gpu = gpu.clone();
    Session::new(gpu, move |progress| {
        inversion::reconstruct(&worker_gpu, &artifacts, &folders, progress)
    })
}
