//! Bad configs and bad step inputs are errors that name what is wrong (never panics, never NaNs).

use iterinv_engine::sched::{Scheduler, SchedulerConfig, SchedulerKind, StepOptions};
use iterinv_engine::{Error, Tensor};

use crate::common::gpu;

/// The config error's field, or a failure showing what came instead.
fn config_field<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Config {
            field,
            value,
            detail,
        }) => {
            assert!(!detail.is_empty() && !value.is_empty());
            field
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

fn message<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.expect_err("an error").to_string()
}

#[test]
fn absent_fields_take_diffusers_defaults_and_unknown_ones_are_ignored() {
    let c = SchedulerConfig::from_json_str(
        r#"{"_class_name": "DDIMScheduler", "skip_prk_steps": true, "trained_betas": null,
            "beta_schedule": "scaled_linear", "prediction_type": "v_prediction"}"#,
    )
    .unwrap();
    assert_eq!(
        c,
        SchedulerConfig {
            beta_schedule: "scaled_linear".into(),
            prediction_type: "v_prediction".into(),
            ..Default::default()
        }
    );
    let d = SchedulerConfig::default();
    assert_eq!(
        (
            d.num_train_timesteps,
            d.beta_start,
            d.beta_end,
            d.steps_offset
        ),
        (1000, 0.0001, 0.02, 0)
    );
    assert_eq!(d.variance_type_or_default(), "fixed_small");
    assert!(d.clip_sample && d.set_alpha_to_one && !d.thresholding);
}

#[test]
fn unsupported_config_values_name_their_field() {
    for (json, field) in [
        (r#"{"beta_schedule": "sigmoid"}"#, "beta_schedule"),
        (r#"{"prediction_type": "x0"}"#, "prediction_type"),
        (r#"{"timestep_spacing": "karras"}"#, "timestep_spacing"),
        (r#"{"variance_type": "tiny"}"#, "variance_type"),
        (r#"{"num_train_timesteps": 0}"#, "num_train_timesteps"),
        (r#"{"num_train_timesteps": "1000"}"#, "num_train_timesteps"),
        (r#"{"steps_offset": -1}"#, "steps_offset"),
        (r#"{"thresholding": 1}"#, "thresholding"),
        (
            r#"{"dynamic_thresholding_ratio": 1.5}"#,
            "dynamic_thresholding_ratio",
        ),
        (r#"{"clip_sample_range": -1.0}"#, "clip_sample_range"),
        (
            r#"{"num_train_timesteps": 3, "trained_betas": [0.1, 0.2]}"#,
            "trained_betas",
        ),
        (r#"[1, 2]"#, "(file)"),
        (r#"{"beta_schedule": "#, "(file)"),
    ] {
        let got = config_field(SchedulerConfig::from_json_str(json));
        assert_eq!(got, field, "{json}");
    }
    let bad = SchedulerConfig {
        beta_schedule: "laplace".into(),
        ..Default::default()
    };
    assert_eq!(config_field(bad.validate()), "beta_schedule");
    assert_eq!(
        config_field(Scheduler::new(SchedulerKind::Ddim, bad)),
        "beta_schedule"
    );
    // diffusers' DDPM step takes √(log β) for fixed_large_log (NaN); DDIM never reads the field.
    let fll = SchedulerConfig {
        variance_type: Some("fixed_large_log".into()),
        ..Default::default()
    };
    assert_eq!(
        config_field(Scheduler::new(SchedulerKind::Ddpm, fll.clone())),
        "variance_type"
    );
    assert!(Scheduler::new(SchedulerKind::Ddim, fll).is_ok());
}

#[test]
fn step_counts_and_schedules_are_checked() {
    for kind in [SchedulerKind::Ddpm, SchedulerKind::Ddim] {
        let mut s = Scheduler::new(kind, SchedulerConfig::default()).unwrap();
        assert!(message(s.set_timesteps(0)).contains("num_inference_steps = 0"));
        assert!(message(s.set_timesteps(1001)).contains("num_inference_steps = 1001"));
        s.set_timesteps(1000).unwrap();
    }
    let mut ddpm = Scheduler::new(SchedulerKind::Ddpm, SchedulerConfig::default()).unwrap();
    assert!(message(ddpm.set_custom_timesteps(&[])).contains("empty"));
    assert!(message(ddpm.set_custom_timesteps(&[1000, 0])).contains("not below"));
    assert!(message(ddpm.set_custom_timesteps(&[500, 500, 0])).contains("descending"));
    let mut ddim = Scheduler::new(SchedulerKind::Ddim, SchedulerConfig::default()).unwrap();
    assert!(message(ddim.set_custom_timesteps(&[999, 0])).contains("DDIM"));
}

#[test]
fn bad_step_inputs_are_errors() {
    let g = gpu();
    let x = Tensor::zeros(g, &[1, 3, 4, 4]).unwrap();
    let x6 = Tensor::zeros(g, &[1, 6, 4, 4]).unwrap();
    let x5 = Tensor::zeros(g, &[1, 5, 4, 4]).unwrap();
    let no = StepOptions::default();
    let if_config = SchedulerConfig {
        beta_schedule: "squaredcos_cap_v2".into(),
        variance_type: Some("learned_range".into()),
        thresholding: true,
        dynamic_thresholding_ratio: 0.95,
        sample_max_value: 1.5,
        ..Default::default()
    };
    let mut ddpm = Scheduler::new(SchedulerKind::Ddpm, if_config.clone()).unwrap();
    ddpm.set_timesteps(10).unwrap();
    // DDPM needs its noise at t > 0, and not at t = 0.
    assert!(message(ddpm.step(&x6, 900, &x, no)).contains("noise"));
    ddpm.step(&x6, 0, &x, no).unwrap();
    // learned_range needs the variance half.
    assert!(message(ddpm.step(&x, 0, &x, no)).contains("2·3 channels"));
    // Timesteps outside the schedule or the training range; shapes that do not match.
    let opts = StepOptions {
        noise: Some(&x),
        eta: 0.0,
    };
    assert!(message(ddpm.step(&x6, 950, &x, opts)).contains("not in the schedule"));
    assert!(message(ddpm.step(&x6, 1000, &x, opts)).contains("num_train_timesteps"));
    assert!(message(ddpm.step(&x5, 900, &x, opts)).contains("C or 2C"));
    let wrong_noise = StepOptions {
        noise: Some(&x6),
        eta: 0.0,
    };
    assert!(message(ddpm.step(&x6, 900, &x, wrong_noise)).contains("noise"));
    let flat = Tensor::zeros(g, &[3]).unwrap();
    assert!(message(ddpm.step(&flat, 0, &flat, no)).contains("[B, C, ...]"));

    // DDIM: set_timesteps first; eta > 0 needs noise; eta must be sane.
    let mut ddim = Scheduler::new(SchedulerKind::Ddim, if_config).unwrap();
    assert!(message(ddim.step(&x6, 900, &x, no)).contains("set_timesteps"));
    ddim.set_timesteps(10).unwrap();
    ddim.step(&x6, 900, &x, no).unwrap();
    let eta = StepOptions {
        noise: None,
        eta: 0.5,
    };
    assert!(message(ddim.step(&x6, 900, &x, eta)).contains("noise"));
    for bad in [-0.5, f32::NAN, 3.0] {
        let opts = StepOptions {
            noise: Some(&x),
            eta: bad,
        };
        assert!(
            message(ddim.step(&x, 900, &x, opts)).contains("eta"),
            "{bad}"
        );
    }

    // Epsilon prediction where ᾱ_t = 0 (zero terminal SNR) divides by zero.
    let zero_snr = SchedulerConfig {
        rescale_betas_zero_snr: true,
        timestep_spacing: "trailing".into(),
        ..Default::default()
    };
    let mut s = Scheduler::new(SchedulerKind::Ddim, zero_snr).unwrap();
    s.set_timesteps(10).unwrap();
    assert_eq!(s.alphas_cumprod()[999], 0.0);
    assert!(message(s.step(&x, 999, &x, no)).contains("coefficient"));

    // add_noise: one timestep per sample or one for all, each in range, noise shaped as x.
    let x2 = Tensor::zeros(g, &[2, 3, 4, 4]).unwrap();
    assert!(message(ddpm.add_noise(&x2, &x2, &[1, 2, 3])).contains("3 timesteps"));
    assert!(message(ddpm.add_noise(&x2, &x2, &[1000])).contains("num_train_timesteps"));
    assert!(message(ddpm.add_noise(&x2, &x, &[1])).contains("noise"));
}
