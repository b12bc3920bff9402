//! Keeps the window-system libraries quiet: iterinv opens no window, but while the GPU device is
//! created Mesa's drivers (lavapipe, EGL) ask libwayland for a display, and libwayland prints
//! `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` — several times, before
//! any output — when that variable is unset or not an absolute path (a plain `ssh` or `su`
//! session, a container, cron). Before anything else runs, the CLI points the variable of its
//! own process at a private folder of its own; the display lookup then finds no display there
//! and says nothing. A variable that is set to an absolute path is left as it is.

use std::path::Path;

/// Set `XDG_RUNTIME_DIR` for this process to iterinv's private runtime folder if it is unset or
/// not an absolute path. Call it at the top of `main`, before any thread starts (changing the
/// environment races with threads reading it).
pub fn ensure() {
    let set = std::env::var_os("XDG_RUNTIME_DIR");
    if set.as_deref().is_some_and(|d| Path::new(d).is_absolute()) {
        return;
    }
    let dir = iterinv::embedded::cache_dir().join("runtime");
    match create(&dir) {
        Ok(()) => std::env::set_var("XDG_RUNTIME_DIR", dir),
        // Not fatal: the worst is the warning this is meant to avoid.
        Err(e) => log::debug!("no private XDG_RUNTIME_DIR: {e}"),
    }
}

/// The folder, created if missing, readable by its owner alone (as the XDG base directory
/// specification asks of a runtime folder).
fn create(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
