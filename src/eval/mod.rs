//! `iterinv eval`'s library side: the paper's table over a dataset (spec/method.md, "Evaluation
//! in the paper"). A dataset folder and its prompts ([`dataset`]), a deterministic share of it
//! for one job of an array ([`shard`]), the configurations compared ([`methods`]), one record
//! per image written last, which makes runs resumable ([`record`]), and the summary rebuilt from
//! those records alone, for one run or merged shards ([`mod@collect`], [`summary`], [`stats`]), with
//! a contact sheet per image ([`contact_sheet`]). Inverting and scoring each image is the
//! command's loop (cli/src/eval.rs) over [`crate::pipeline::inversion::invert`] and
//! [`crate::scoring`].

pub mod collect;
pub mod contact_sheet;
pub mod dataset;
pub mod methods;
pub mod record;
pub mod shard;
pub mod stats;
pub mod summary;

pub use collect::collect;
pub use dataset::{Dataset, Item};
pub use methods::{parse_methods, MethodSpec};
pub use record::{ImageRecord, MethodScores, RunInfo, StageScores};
pub use shard::Shard;
pub use summary::Summary;
