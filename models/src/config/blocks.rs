//! The block kinds a UNet config names, as enums (parsed from diffusers' class names).

/// Down block kinds iterinv runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownBlockType {
    /// IF: resnets, then a resnet downsampler.
    ResnetDownsample,
    /// IF: resnets with added-KV attention, then a resnet downsampler.
    SimpleCrossAttn,
    /// SD: resnets, then a strided-conv downsampler.
    Plain,
    /// SD: resnets with transformer blocks, then a strided-conv downsampler.
    CrossAttn,
}

impl DownBlockType {
    pub const NAMES: [&'static str; 4] = [
        "ResnetDownsampleBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "DownBlock2D",
        "CrossAttnDownBlock2D",
    ];

    pub(crate) fn parse(name: &str) -> Option<DownBlockType> {
        Some(match name {
            "ResnetDownsampleBlock2D" => DownBlockType::ResnetDownsample,
            "SimpleCrossAttnDownBlock2D" => DownBlockType::SimpleCrossAttn,
            "DownBlock2D" => DownBlockType::Plain,
            "CrossAttnDownBlock2D" => DownBlockType::CrossAttn,
            _ => return None,
        })
    }

    pub fn has_attention(self) -> bool {
        matches!(
            self,
            DownBlockType::SimpleCrossAttn | DownBlockType::CrossAttn
        )
    }
}

/// Up block kinds iterinv runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpBlockType {
    ResnetUpsample,
    SimpleCrossAttn,
    Plain,
    CrossAttn,
}

impl UpBlockType {
    pub const NAMES: [&'static str; 4] = [
        "ResnetUpsampleBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "UpBlock2D",
        "CrossAttnUpBlock2D",
    ];

    pub(crate) fn parse(name: &str) -> Option<UpBlockType> {
        Some(match name {
            "ResnetUpsampleBlock2D" => UpBlockType::ResnetUpsample,
            "SimpleCrossAttnUpBlock2D" => UpBlockType::SimpleCrossAttn,
            "UpBlock2D" => UpBlockType::Plain,
            "CrossAttnUpBlock2D" => UpBlockType::CrossAttn,
            _ => return None,
        })
    }

    pub fn has_attention(self) -> bool {
        matches!(self, UpBlockType::SimpleCrossAttn | UpBlockType::CrossAttn)
    }
}

/// Mid block kinds iterinv runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MidBlockType {
    /// IF: resnet → added-KV attention → resnet.
    SimpleCrossAttn,
    /// SD: resnet → transformer → resnet.
    CrossAttn,
}

impl MidBlockType {
    pub const NAMES: [&'static str; 2] =
        ["UNetMidBlock2DSimpleCrossAttn", "UNetMidBlock2DCrossAttn"];

    pub(crate) fn parse(name: &str) -> Option<MidBlockType> {
        Some(match name {
            "UNetMidBlock2DSimpleCrossAttn" => MidBlockType::SimpleCrossAttn,
            "UNetMidBlock2DCrossAttn" => MidBlockType::CrossAttn,
            _ => return None,
        })
    }
}

/// What is added to the time embedding besides the timestep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassEmbedding {
    None,
    /// `class_embed_type: "timestep"` (IF-II): the class label (noise level) goes through the same
    /// sinusoid as the timestep, then `class_embedding.linear_{1,2}`.
    Timestep,
    /// `num_class_embeds: n` with no class_embed_type (SD x4 upscaler): a table of n rows.
    Table(usize),
}
