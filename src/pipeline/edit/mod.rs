//! Editing a real photo through its inversion: DiffEdit at stage I (`diffedit.rs`), then every
//! super-resolution stage regenerated from its saved inverted latent with the edited image as
//! its condition.

pub mod diffedit;

pub use diffedit::{diffedit, DiffEditOutput, DiffEditSettings, EditTexts};
