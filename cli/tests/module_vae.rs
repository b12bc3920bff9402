//! `iterinv module vae` end to end: the binary on the VAE fixture, its outputs compared with
//! diffusers' float64 goldens (1e-3 of the largest magnitude, as in the model tests), and its
//! errors.

mod common;

use std::path::Path;

use common::{
    assert_fails_with, assert_help_mentions, assert_matches, assert_succeeded, fixture, iterinv,
};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

fn run(model: &Path, inputs: &Path, out: &Path) -> std::process::Output {
    iterinv(&[
        "module",
        "vae",
        "--model",
        model.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Writes one f32 array of zeros named `name` with `shape`.
fn write_zeros(path: &Path, name: &str, shape: &[usize]) {
    let bytes = vec![0u8; 4 * shape.iter().product::<usize>()];
    let view = TensorView::new(Dtype::F32, shape.to_vec(), &bytes).unwrap();
    safetensors::serialize_to_file([(name, view)], None, path).unwrap();
}

/// The golden file holds both `image` and `latent`: one run encodes and decodes.
#[test]
fn encode_and_decode_match_diffusers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let io = fixture("vae").join("vae_io.safetensors");
    let run = run(&fixture("vae").join("vae"), &io, &out);
    assert_succeeded(&run);
    let (got, want) = (std::fs::read(&out).unwrap(), std::fs::read(&io).unwrap());
    let (got, want) = (
        SafeTensors::deserialize(&got).unwrap(),
        SafeTensors::deserialize(&want).unwrap(),
    );
    for name in ["mean", "std", "decoded"] {
        assert_matches(&got, name, &want, name);
    }
}

/// A file with only a latent gives only `decoded`.
#[test]
fn a_latent_alone_is_decoded() {
    let tmp = tempfile::tempdir().unwrap();
    let (inputs, out) = (
        tmp.path().join("in.safetensors"),
        tmp.path().join("out.safetensors"),
    );
    write_zeros(&inputs, "latent", &[1, 4, 3, 5]);
    // The pipeline folder: the VAE is found in vae/.
    let run = run(&fixture("vae"), &inputs, &out);
    assert_succeeded(&run);
    let bytes = std::fs::read(&out).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names(), ["decoded"]);
    assert_eq!(st.tensor("decoded").unwrap().shape(), [1, 3, 12, 20]);
}

#[test]
fn errors_name_the_problem_and_exit_nonzero() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let odd = tmp.path().join("odd.safetensors");
    write_zeros(&odd, "image", &[1, 3, 24, 18]);
    let neither = tmp.path().join("neither.safetensors");
    write_zeros(&neither, "sample", &[1, 3, 24, 16]);
    let vae = fixture("vae").join("vae");
    let io = fixture("vae").join("vae_io.safetensors");
    let cases = [
        (vae.clone(), odd, "height and width must be multiples of 4"),
        (vae.clone(), neither, "neither `image`"),
        (
            fixture("if_unet").join("stage1"),
            io,
            "holds a UNet2DConditionModel",
        ),
    ];
    for (model, inputs, expected) in cases {
        assert_fails_with(&run(&model, &inputs, &out), expected);
    }
}

#[test]
fn help_documents_the_file_format() {
    let words = [
        "image",
        "latent",
        "mean",
        "std",
        "decoded",
        "scaling_factor",
        "--variant",
    ];
    assert_help_mentions(&["module", "vae"], &words);
}
