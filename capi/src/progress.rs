//! The progress callback: where a long call stands, and the caller's way to cancel it.

use std::ffi::{c_char, c_void, CString};

use iterinv::pipeline::inversion::Event;

/// Called during `iterinv_invert` and `iterinv_reconstruct`, on the calling thread, with where
/// the work stands: `stage` (from 1), `phase` (UTF-8, valid during the call: "loading" — the
/// stage's models —, "DDIM inversion", "null-text inversion", "IterInv", "fixed point",
/// "reconstruction", ...), `step` of `total`
/// timesteps done (`total` 0: a phase without timesteps) and the last timestep's inner loss
/// (NaN where the phase has none), and `user` as given. It is called at each phase's start,
/// after each timestep and, in NTI and IterInv, after each inner iteration (the same `step`
/// again). Return 0 to go on; nonzero cancels: the call stops there and returns
/// `ITERINV_STATUS_CANCELLED`, making nothing.
pub type IterinvProgress = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        stage: u32,
        phase: *const c_char,
        step: u32,
        total: u32,
        loss: f64,
    ) -> i32,
>;

/// A C callback and its user pointer, as the library's progress function.
pub struct Callback {
    pub function: IterinvProgress,
    pub user: *mut c_void,
}

impl Callback {
    /// Report `e`; a nonzero answer is the library's `Interrupted`.
    pub fn report(&self, e: &Event) -> iterinv::Result<()> {
        let Some(f) = self.function else {
            return Ok(());
        };
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let phase = CString::new(e.phase).unwrap_or_default();
        let loss = e.loss.unwrap_or(f64::NAN);
        let answer = unsafe {
            f(
                self.user,
                count(e.stage),
                phase.as_ptr(),
                count(e.step),
                count(e.total),
                loss,
            )
        };
        match answer {
            0 => Ok(()),
            n => Err(iterinv::Error::Interrupted(format!(
                "cancelled by the progress callback (it returned {n})"
            ))),
        }
    }
}
