//! `iterinv edit`: a photo, or a saved inversion, edited into another text with DiffEdit at
//! stage I and every upper stage regenerated from the inversion.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use iterinv::image_io::save_png;
use iterinv::pipeline::edit::{edit, DiffEditSettings, EditOptions};
use iterinv::pipeline::inversion::artifacts::{write_atomic, META_FILE};
use iterinv::pipeline::inversion::Artifacts;
use iterinv::{Gpu, Tensor};
use serde_json::json;

use crate::cascade_args::CascadeArgs;
use crate::invert::invert_photo;
use crate::progress::{stop_on_ctrl_c, Bars};

#[derive(Args)]
#[command(after_help = "\
INPUT is a photo (then --prompt describes it; it is inverted first with the inversion flags below,
the artifacts written into OUT/inversion/) or a folder `iterinv invert --out` wrote (its photo,
prompt and models are the inversion's; --stage1/--stage2/--stage3 only relocate moved models).

Stage I is edited with DiffEdit as the IterInv paper's code runs it: a mask where the UNet's
guided noise predictions for --prompt and --edit-prompt differ (--mask-maps noise draws at
--mask-encode-strength, thresholded at half the mean difference times --mask-ratio), a guided
DDIM inversion of the photo over the first --inpaint-strength of --edit-steps steps, and guided
denoising with --edit-prompt that keeps the inverted pixels outside the mask. Every upper stage
is then regenerated from its inverted x_T, conditioned on the edited image below it and
--edit-prompt. The defaults are the paper's code's (30 steps, guidance 3, 10 maps, encode
strength 0.1, ratio 1, inpaint strength 0.8); diffusers' Stable Diffusion DiffEdit uses 50 steps,
guidance 7.5, encode strength 0.5, ratio 3 and inpaint strength 0.8.

Writes into --out: mask.png (white: edited, at stage I's size), stage1.png, stage2.png, ... (the
edited image of each stage), input-stage1.png and edit.json (every setting, the seed, the
prompts and the inversion used).")]
pub struct EditArgs {
    /// A photo, or a folder written by `iterinv invert`.
    input: PathBuf,
    /// What the photo should become ("a photo of a dog").
    #[arg(long)]
    edit_prompt: String,
    /// What the photo shows (needed for a photo; a saved inversion has its own).
    #[arg(long)]
    prompt: Option<String>,
    /// Output folder (created; files in it with the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// DiffEdit's DDIM steps.
    #[arg(long, default_value_t = 30)]
    pub(crate) edit_steps: usize,
    /// DiffEdit's guidance scale (mask, inversion and denoising).
    #[arg(long, default_value_t = 3.0)]
    pub(crate) edit_guidance: f32,
    /// Noise draws averaged into the mask.
    #[arg(long, default_value_t = 10)]
    mask_maps: usize,
    /// How far into the schedule the mask's noise goes (0..1].
    #[arg(long, default_value_t = 0.1)]
    mask_encode_strength: f64,
    /// The difference map is clamped to its mean times this before the 0.5 threshold.
    #[arg(long, default_value_t = 1.0)]
    mask_ratio: f64,
    /// The share of the schedule that is inverted and re-drawn (0..1]: more changes more.
    #[arg(long, default_value_t = 0.8)]
    inpaint_strength: f64,
    #[command(flatten)]
    inversion: CascadeArgs,
}

impl EditArgs {
    /// The number flags, before any device or file is opened (see numbers.rs).
    pub fn check_numbers(&self) -> Result<()> {
        use crate::numbers::{finite, inner_steps, steps};
        steps("edit-steps", self.edit_steps)?;
        inner_steps("mask-maps", self.mask_maps, false)?;
        finite("edit-guidance", self.edit_guidance.into())?;
        self.settings().check()?;
        self.inversion.check_numbers()
    }

    fn settings(&self) -> DiffEditSettings {
        DiffEditSettings {
            steps: self.edit_steps,
            guidance: self.edit_guidance,
            maps: self.mask_maps,
            encode_strength: self.mask_encode_strength,
            mask_ratio: self.mask_ratio,
            inpaint_strength: self.inpaint_strength,
        }
    }
}

impl EditArgs {
    /// The photo, or the folder of a saved inversion, to edit.
    pub fn input(&self) -> &std::path::Path {
        &self.input
    }
}

pub fn run(gpu: &Gpu, args: EditArgs) -> Result<()> {
    stop_on_ctrl_c();
    let saved = args.input.join(META_FILE).is_file();
    let (artifacts, inversion_dir, mut opts) = if saved {
        if args.prompt.is_some() {
            bail!(
                "{} is a saved inversion, which has its prompt; drop --prompt",
                args.input.display()
            );
        }
        let mut opts = EditOptions::new(&args.edit_prompt);
        opts.folders = args.inversion.folder_overrides();
        (Artifacts::load(&args.input)?, args.input.clone(), opts)
    } else if args.input.is_dir() {
        bail!(
            "{} is a folder without {META_FILE}: give a photo or a folder `iterinv invert` wrote",
            args.input.display()
        );
    } else {
        let Some(prompt) = &args.prompt else {
            bail!("editing a photo needs --prompt, the text that describes it");
        };
        let dir = args.out.join("inversion");
        let artifacts = invert_photo(gpu, &args.input, prompt, &args.inversion, &dir)?;
        (artifacts, dir, EditOptions::new(&args.edit_prompt))
    };
    opts.settings = args.settings();
    opts.seed = args.inversion.seed;

    let mut bars = Bars::default();
    let result = edit(gpu, &artifacts, &opts, &mut |e| bars.update(e));
    bars.finish();
    let result = result?;

    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    save_png(&mask_image(&result.mask)?, 0, &out.join("mask.png"))?;
    save_png(&result.input, 0, &out.join("input-stage1.png"))?;
    for (i, image) in result.images.iter().enumerate() {
        save_png(image, 0, &out.join(format!("stage{}.png", i + 1)))?;
    }
    let record = json!({
        "iterinv_version": iterinv::VERSION,
        "inversion": inversion_dir,
        "image": opts.image.as_ref().unwrap_or(&artifacts.meta.image),
        "prompt": artifacts.meta.prompt,
        "edit_prompt": opts.edit_prompt,
        "diffedit": opts.settings,
        "seed": opts.seed,
        "mask_noise": "diffedit_mask_{k}, k < maps: Philox streams of the seed",
        "edited_fraction": fraction(&result.mask)?,
    });
    let text = serde_json::to_vec_pretty(&record).context("serializing edit.json")?;
    write_atomic(&out.join("edit.json"), &text)?;
    eprintln!(
        "edited {:.0}% of stage I; wrote {}",
        100.0 * fraction(&result.mask)?,
        out.display()
    );
    Ok(())
}

/// The mask as an image: white (1) where edited, black (−1) where kept.
fn mask_image(mask: &Tensor) -> Result<Tensor> {
    let m = mask.mul_scalar(2.0)?.add_scalar(-1.0)?;
    Ok(Tensor::concat(&[&m, &m, &m], 1)?)
}

fn fraction(mask: &Tensor) -> Result<f64> {
    let v = mask.to_vec()?;
    Ok(v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64)
}
