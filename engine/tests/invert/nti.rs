//! Null-text inversion on analytic denoisers: NTI against plain guided reconstruction, NPI's
//! exactness, and the null embedding's identical rows (tied by the reference loop, untied on
//! request).

use super::{ddim, gpu, max_diff, scheduler, unguided, Denoiser, Guidance, Result, Tensor};

/// ε = √(1 − ᾱ_t)·x + κ·text, the text `[B, 1, C·H·W]` read as an image: guidance moves the
/// prediction by κ·w·(cond − uncond), which a good null embedding can cancel.
struct TextShift {
    alphas: Vec<f64>,
    kappa: f32,
}

impl Denoiser for TextShift {
    fn predict(&self, x_t: &Tensor, t: usize, context: &Tensor) -> Result<Tensor> {
        let text = context.reshape(x_t.shape())?.mul_scalar(self.kappa)?;
        x_t.mul_scalar((1.0 - self.alphas[t]).sqrt() as f32)?
            .add(&text)
    }
}

#[test]
fn null_text_inversion_beats_plain_guided_reconstruction_and_npi_is_exact() {
    use iterinv_engine::invert::nti::{null_text_inversion, reconstruct, NtiOptions};
    let gpu = gpu();
    let x0 = Tensor::randn(gpu, &[1, 3, 8, 8], 5, 0).unwrap();
    let cond = Tensor::randn(gpu, &[1, 1, 192], 6, 0)
        .unwrap()
        .mul_scalar(0.3)
        .unwrap();
    let null0 = Tensor::zeros(gpu, &[1, 1, 192]).unwrap();
    let s = scheduler(10, "epsilon");
    let d = TextShift {
        alphas: s.alphas_cumprod().to_vec(),
        kappa: 0.2,
    };
    let plain = Guidance {
        cond: &cond,
        uncond: None,
        scale: 1.0,
    };
    let trace = ddim::invert(&d, &s, &x0, plain).unwrap();
    let x_t = trace.last().unwrap();
    let input = x0.to_vec().unwrap();
    let err = |x: &Tensor| max_diff(&x.to_vec().unwrap(), &input);

    let guided = Guidance {
        cond: &cond,
        uncond: Some(&null0),
        scale: 3.0,
    };
    let baseline = err(&ddim::reconstruct(&d, &s, x_t, guided).unwrap());
    let opts = NtiOptions {
        lr: 1e-2,
        ..Default::default()
    };
    let (nulls, reports) =
        null_text_inversion(&d, &s, &trace, &cond, &null0, opts, &mut |_| Ok(())).unwrap();
    assert_eq!((nulls.len(), reports.len()), (10, 10));
    assert!(reports.iter().all(|r| r.iterations == 51));
    let nti = err(&reconstruct(&d, &s, x_t, &cond, &nulls, 3.0).unwrap());
    let guidance1 = err(&ddim::reconstruct(&d, &s, x_t, plain).unwrap());
    eprintln!(
        "max error at guidance 3: plain {baseline:.3e}, NTI {nti:.3e}; guidance 1: {guidance1:.3e}"
    );
    assert!(nti * 10.0 < baseline, "NTI {nti} vs plain {baseline}");
    assert_eq!(
        null0.to_vec().unwrap(),
        vec![0.0; 192],
        "the caller's embedding is not modified"
    );

    // NPI: null := cond makes guided sampling the conditional one.
    let npi = Guidance {
        cond: &cond,
        uncond: Some(&cond),
        scale: 3.0,
    };
    let a = ddim::reconstruct(&d, &s, x_t, npi)
        .unwrap()
        .to_vec()
        .unwrap();
    let b = ddim::reconstruct(&d, &s, x_t, plain)
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(max_diff(&a, &b) < 1e-5);
}

/// ε = √(1 − ᾱ_t)·x + κ·mean over the text's rows of gelu(row), each row `[C·H·W]` read as an
/// image: symmetric in the rows (as cross-attention is in its keys), and nonlinear, so untied
/// rows get different gradients.
struct RowMean {
    alphas: Vec<f64>,
    kappa: f32,
}

impl Denoiser for RowMean {
    fn predict(&self, x_t: &Tensor, t: usize, context: &Tensor) -> Result<Tensor> {
        let text = context.gelu()?.mean(&[1], false)?.reshape(x_t.shape())?;
        x_t.mul_scalar((1.0 - self.alphas[t]).sqrt() as f32)?
            .add(&text.mul_scalar(self.kappa)?)
    }
}

#[test]
fn nti_keeps_identical_null_rows_tied_unless_it_unties_them() {
    use iterinv_engine::invert::nti::{null_text_inversion, NtiOptions};
    let gpu = gpu();
    let x0 = Tensor::randn(gpu, &[1, 3, 8, 8], 5, 0).unwrap();
    let cond = Tensor::randn(gpu, &[1, 4, 192], 6, 0).unwrap();
    // Four identical rows, as an empty prompt's padding tokens are.
    let row = Tensor::randn(gpu, &[1, 1, 192], 7, 0).unwrap();
    let null0 = Tensor::concat(&[&row, &row, &row, &row], 1).unwrap();
    let s = scheduler(6, "epsilon");
    let d = RowMean {
        alphas: s.alphas_cumprod().to_vec(),
        kappa: 0.5,
    };
    let plain = unguided(&cond);
    let trace = ddim::invert(&d, &s, &x0, plain).unwrap();
    let rows = |null: &Tensor| -> Vec<Vec<u32>> {
        let v = null.to_vec().unwrap();
        v.chunks(192)
            .map(|r| r.iter().map(|x| x.to_bits()).collect())
            .collect()
    };
    let run = |untie| {
        let opts = NtiOptions {
            inner_steps: 5,
            lr: 1e-2,
            untie,
            ..Default::default()
        };
        null_text_inversion(&d, &s, &trace, &cond, &null0, opts, &mut |_| Ok(()))
            .unwrap()
            .0
    };
    // The reference loop: identical rows get bit-identical gradients and Adam steps, so every
    // step's null keeps its four rows equal (PyTorch's float32 CPU kernels do not: issue 17).
    let tied = run(None);
    for null in &tied {
        let r = rows(null);
        assert!(r.iter().all(|x| *x == r[0]), "a tied row moved apart");
    }
    assert_ne!(rows(&tied[5])[0], rows(&null0)[0], "the null was optimized");
    // Untied: seeded noise of 1e-3 of the null's RMS parts the rows at the start, they stay
    // apart (each has gradients of its own from then on), and a second run is the same bits.
    let untied = run(Some(1e-3));
    for null in &untied {
        let r = rows(null);
        assert!(r[1..].iter().all(|x| *x != r[0]), "untied rows tied again");
    }
    let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    let null_rms = rms(&null0.to_vec().unwrap());
    let moved: Vec<f32> = untied[0]
        .to_vec()
        .unwrap()
        .iter()
        .zip(tied[0].to_vec().unwrap())
        .map(|(a, b)| a - b)
        .collect();
    let ratio = rms(&moved) / (1e-3 * null_rms);
    // The noise's RMS over 768 draws is within a few percent of its σ; one timestep's Adam
    // steps, nearly the same for tied and untied rows, add little.
    assert!(
        (0.8..1.25).contains(&ratio),
        "the untying noise is {ratio}× the stated size"
    );
    let again = run(Some(1e-3));
    assert!(
        untied.iter().zip(&again).all(|(a, b)| rows(a) == rows(b)),
        "not reproducible"
    );
}
