//! diffusers' defaults for `UNet2DConditionModel` config fields that a config.json may omit.

use super::OneOrMany;
pub fn one() -> usize {
    1
}
pub fn three() -> usize {
    3
}
pub fn four() -> usize {
    4
}
pub fn sixty_four() -> usize {
    64
}
pub fn yes() -> bool {
    true
}
pub fn unit() -> f64 {
    1.0
}
pub fn eps() -> f64 {
    1e-5
}
pub fn groups() -> Option<usize> {
    Some(32)
}
pub fn silu() -> String {
    "silu".into()
}
pub fn default_str() -> String {
    "default".into()
}
pub fn positional() -> String {
    "positional".into()
}
pub fn mid_block_type() -> Option<String> {
    Some("UNetMidBlock2DCrossAttn".into())
}
pub fn down_block_types() -> Vec<String> {
    [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ]
    .map(String::from)
    .to_vec()
}
pub fn up_block_types() -> Vec<String> {
    [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ]
    .map(String::from)
    .to_vec()
}
pub fn block_out_channels() -> Vec<usize> {
    vec![320, 640, 1280, 1280]
}
pub fn no_per_block() -> OneOrMany<bool> {
    OneOrMany::One(false)
}
pub fn one_per_block() -> OneOrMany<usize> {
    OneOrMany::One(1)
}
pub fn two_per_block() -> OneOrMany<usize> {
    OneOrMany::One(2)
}
pub fn eight_per_block() -> OneOrMany<usize> {
    OneOrMany::One(8)
}
pub fn cross_attention_dim() -> OneOrMany<usize> {
    OneOrMany::One(1280)
}
