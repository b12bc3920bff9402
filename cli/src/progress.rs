//! Progress bars of `invert`, `reconstruct` and `eval` (plain log lines where stderr is not a
//! terminal), and the Ctrl-C switch that stops them cleanly.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use iterinv::pipeline::inversion::Event;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// On the first Ctrl-C, ask the running inversion to stop at its next step, a timestep or an
/// inner iteration (it returns `Error::Interrupted` and nothing is written); on the second, exit
/// at once.
pub fn stop_on_ctrl_c() {
    let installed = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping at the next step (Ctrl-C again to exit now)");
    });
    if let Err(e) = installed {
        log::warn!("Ctrl-C will not stop cleanly: {e}");
    }
}

/// Whether Ctrl-C was pressed (long loops over many items stop between items too).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// One bar per stage and phase; the message shows the last timestep's inner loss. Where stderr
/// is not a terminal (a pipe, a log file, a CI or Slurm job), where a bar draws nothing, each
/// phase prints plain lines instead: when it starts, every tenth of its timesteps, and when it
/// ends.
#[derive(Default)]
pub struct Bars {
    current: Option<(String, Display)>,
    /// Where the bars go when they sit under another (eval's bar over the dataset); each is
    /// then cleared when done.
    multi: Option<MultiProgress>,
}

/// How one phase's progress is shown.
enum Display {
    Bar(ProgressBar),
    Lines(Lines),
}

/// A phase's progress as plain lines.
struct Lines {
    start: Instant,
    /// The tenths of the phase's timesteps already printed.
    tenths: usize,
}

/// Lines per phase between its start and its end.
const LINES: usize = 10;

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
            let display = if std::io::stderr().is_terminal() {
                Display::Bar(self.bar(&key, e.total))
            } else {
                match e.total {
                    0 => eprintln!("{key}: started"),
                    n => eprintln!("{key}: started, {n} timesteps"),
                }
                Display::Lines(Lines {
                    start: Instant::now(),
                    tenths: 0,
                })
            };
            self.current = Some((key, display));
        }
        match &mut self.current {
            Some((_, Display::Bar(bar))) => {
                bar.set_position(e.step as u64);
                if let Some(loss) = e.loss {
                    bar.set_message(format!("loss {loss:.3e}"));
                }
            }
            Some((key, Display::Lines(lines))) => {
                // The last tenth is the end line's.
                let tenths = (e.step * LINES).checked_div(e.total).unwrap_or(0);
                if tenths > lines.tenths && e.step < e.total {
                    lines.tenths = tenths;
                    let loss = e.loss.map_or(String::new(), |l| format!(", loss {l:.3e}"));
                    eprintln!(
                        "{key}: {}/{} timesteps, {:.1} s{loss}",
                        e.step,
                        e.total,
                        lines.start.elapsed().as_secs_f64()
                    );
                }
            }
            None => {}
        }
        Ok(())
    }

    /// A new bar for `key`'s phase of `total` timesteps (0: a spinner).
    fn bar(&self, key: &str, total: usize) -> ProgressBar {
        let bar = if total == 0 {
            ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{prefix} {elapsed}").expect("a valid template"),
            )
        } else {
            ProgressBar::new(total as u64).with_style(
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
        bar.set_prefix(key.to_string());
        bar
    }

    pub fn finish(&mut self) {
        match self.current.take() {
            Some((_, Display::Bar(bar))) if self.multi.is_some() => bar.finish_and_clear(),
            Some((_, Display::Bar(bar))) => bar.finish(),
            Some((key, Display::Lines(lines))) => {
                eprintln!("{key}: ended, {:.1} s", lines.start.elapsed().as_secs_f64())
            }
            None => {}
        }
    }
}
