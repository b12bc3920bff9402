//! The viewer example's app logic, a library so that its headless test drives the same code as
//! its window (main.rs).

mod app;
mod draw;

pub use app::{Settings, Viewer};
