//! GPU failures as errors. wgpu reports a validation, internal or out-of-memory error either to
//! the innermost error scope of the thread that caused it or, with none, to the device's
//! uncaptured-error handler, whose default panics; a lost device calls a callback. iterinv wraps
//! the calls that can fail in error scopes (allocations, pipeline and bind-group creation,
//! submissions, readbacks), so an embedding application's handlers never see iterinv's errors
//! and its device keeps working. What is caught where no `Result` can carry it (a submission
//! recorded inside an op) is kept as the device's [`Fault`] and returned by the next call that
//! waits for the device.

use std::sync::{Arc, Mutex};

use crate::error::Error;

/// A failure kept until a call that can return it.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    Lost(String),
    Error { what: &'static str, detail: String },
}

pub(crate) type FaultSlot = Arc<Mutex<Option<Fault>>>;

impl Fault {
    pub fn to_error(&self) -> Error {
        match self {
            Fault::Lost(m) => Error::DeviceLost(m.clone()),
            Fault::Error { what, detail } => Error::Gpu {
                what,
                detail: detail.clone(),
            },
        }
    }
}

/// Keep `fault` unless an earlier one is kept (the first failure explains the rest), except that
/// a lost device replaces any other.
pub(crate) fn record(slot: &FaultSlot, fault: Fault) {
    let mut kept = slot.lock().unwrap_or_else(|p| p.into_inner());
    if kept.is_none() || matches!(fault, Fault::Lost(_)) {
        *kept = Some(fault);
    }
}

/// The error kept in `slot`: a lost device stays lost; any other fault is returned once.
pub(crate) fn take(slot: &FaultSlot) -> Option<Error> {
    let mut kept = slot.lock().unwrap_or_else(|p| p.into_inner());
    match kept.as_ref()? {
        Fault::Lost(_) => kept.as_ref().map(Fault::to_error),
        Fault::Error { .. } => kept.take().map(|f| f.to_error()),
    }
}

/// Whether the device is known to be lost.
pub(crate) fn lost(slot: &FaultSlot) -> Option<Error> {
    let kept = slot.lock().unwrap_or_else(|p| p.into_inner());
    match kept.as_ref()? {
        f @ Fault::Lost(_) => Some(f.to_error()),
        _ => None,
    }
}

/// A wgpu error caught while doing `what`. wgpu reports work on a lost device as validation
/// errors that say so ("Parent device is lost", "Device is invalid"): those are a lost device.
pub(crate) fn classify(what: &'static str, e: &wgpu::Error) -> Fault {
    let detail = match e {
        wgpu::Error::OutOfMemory { source } => format!("out of memory: {source}"),
        wgpu::Error::Validation { description, .. } => description.clone(),
        wgpu::Error::Internal { description, .. } => description.clone(),
    };
    let lower = detail.to_lowercase();
    if lower.contains("device is lost")
        || lower.contains("device lost")
        || lower.contains("device is invalid")
    {
        Fault::Lost(detail)
    } else {
        Fault::Error { what, detail }
    }
}

/// Scopes catching every kind of wgpu error, pushed on this thread; [`Scopes::pop`] gives the
/// first error caught.
pub(crate) struct Scopes {
    guards: Vec<wgpu::ErrorScopeGuard>,
}

impl Scopes {
    pub fn push(device: &wgpu::Device) -> Scopes {
        Scopes {
            guards: [
                wgpu::ErrorFilter::Validation,
                wgpu::ErrorFilter::OutOfMemory,
                wgpu::ErrorFilter::Internal,
            ]
            .into_iter()
            .map(|f| device.push_error_scope(f))
            .collect(),
        }
    }

    /// Pop the scopes (innermost first) and return the first error any of them caught.
    pub fn pop(mut self, what: &'static str) -> Option<Fault> {
        let mut first = None;
        while let Some(g) = self.guards.pop() {
            if let Some(e) = pollster::block_on(g.pop()) {
                first.get_or_insert(classify(what, &e));
            }
        }
        first
    }
}
