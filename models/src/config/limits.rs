//! Upper bounds on the sizes a config may declare. A config.json is read before any weight, and
//! its sizes decide allocations (per-layer lists, the timestep embedding table, a stage's image
//! and noise buffers) and products (`channels² · 9`) that must not overflow: a lying or corrupt
//! config is refused here, naming the field, before anything is allocated. Every bound is far
//! above the largest published model (IF-I-XL, IF-II-L, the SD x4 upscaler, T5-XXL).

/// Down (and up) blocks of a UNet (IF: 4 or 5).
pub const MAX_BLOCKS: usize = 16;
/// Layers of one UNet block (IF-II-L: 5).
pub const MAX_LAYERS_PER_BLOCK: usize = 64;
/// Any channel count or width: UNet channels, text widths, T5's d_model and d_ff (T5-XXL: 10240).
pub const MAX_WIDTH: usize = 1 << 16;
/// A UNet's `sample_size`, the side of the images a stage makes (IF-II: 256).
pub const MAX_SAMPLE_SIZE: usize = 4096;
/// Class-embedding table rows (the SD upscaler: 1000 noise levels).
pub const MAX_CLASS_EMBEDS: usize = 1 << 20;
/// Vocabulary of a text encoder (T5: 32128).
pub const MAX_VOCAB: usize = 1 << 20;
/// Encoder layers (T5-XXL: 24).
pub const MAX_LAYERS: usize = 256;
/// Attention heads (T5-XXL: 64).
pub const MAX_HEADS: usize = 1024;
/// T5's relative-position buckets (32) and their maximal distance (128).
pub const MAX_BUCKETS: usize = 4096;
pub const MAX_DISTANCE: usize = 1 << 20;
