//! Progress bars of `invert`, `reconstruct` and `eval`, and the Ctrl-C switch that stops them
//! cleanly.

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use iterinv::pipeline::inversion::Event;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// On the first Ctrl-C, ask the running inversion to stop at its next timestep (it returns
/// `Error::Interrupted` and nothing is written); on the second, exit at once.
pub fn stop_on_ctrl_c() {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after the current timestep (Ctrl-C again to exit now)");
    });
    if let Err(e) = installed {
        log::warn!("Ctrl-C will not stop cleanly: {e}");
    }
}

/// Whether Ctrl-C was pressed (long loops over many items stop between items too).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// One bar per stage and phase; the message shows the last timestep's inner loss.
#[derive(Default)]
pub struct Bars {
    current: Option<(String, ProgressBar)>,
    /// Where the bars go when they sit under another (eval's bar over the dataset); each is
    /// then cleared when done.
    multi: Option<MultiProgress>,
}

impl Bars {
    /// Bars drawn in `multi`, below its other bars, each cleared when done.
    pub fn in_multi(multi: &MultiProgress) -> Bars {
        Bars {
            current: None,
            multi: Some(multi.clone()),
        }
    }

    pub fn update(&mut self, e: &Event) -> iterinv::Result<()> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            self.finish();
            return Err(iterinv::Error::Interrupted("Ctrl-C".into()));
        }
        let key = format!("stage{} {}", e.stage, e.phase);
        if self.current.as_ref().map(|(k, _)| k) != Some(&key) {
            self.finish();
            let bar = if e.total == 0 {
                ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{prefix} {elapsed}").expect("a valid template"),
                )
            } else {
                ProgressBar::new(e.total as u64).with_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} timesteps {elapsed} {msg}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                )
            };
            let bar = match &self.multi {
                Some(m) => m.add(bar),
                None => bar,
            };
            bar.set_prefix(key.clone());
            self.current = Some((key, bar));
        }
        if let Some((_, bar)) = &self.current {
            bar.set_position(e.step as u64);
            if let Some(loss) = e.loss {
                bar.set_message(format!("loss {loss:.3e}"));
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            if self.multi.is_some() {
                bar.finish_and_clear();
            } else {
                bar.finish();
            }
        }
    }
}
