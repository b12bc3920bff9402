//! The scheduler configuration: diffusers' `scheduler_config.json`, with diffusers' defaults for
//! absent fields and unknown fields (`_class_name`, `skip_prk_steps`, …) ignored.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The fields DDPMScheduler and DDIMScheduler (diffusers 0.42.1) read, with their defaults.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    /// "linear" | "scaled_linear" | "squaredcos_cap_v2" (ignored when `trained_betas` is given).
    pub beta_schedule: String,
    /// Explicit betas (one per training timestep), stored as float32 as diffusers does.
    pub trained_betas: Option<Vec<f64>>,
    /// "epsilon" | "v_prediction" | "sample".
    pub prediction_type: String,
    /// DDPM only: "fixed_small" (when absent) | "fixed_small_log" | "fixed_large" | "learned" |
    /// "learned_range". DDIM configs usually lack it and DDIM never reads it.
    pub variance_type: Option<String>,
    /// "leading" | "trailing" | "linspace".
    pub timestep_spacing: String,
    /// Added to every "leading" timestep.
    pub steps_offset: usize,
    /// DDIM only: the ᾱ of the step after the last one is 1 (true) or ᾱ_0 (false).
    pub set_alpha_to_one: bool,
    pub clip_sample: bool,
    pub clip_sample_range: f64,
    /// Dynamic thresholding of x0 (takes precedence over `clip_sample`).
    pub thresholding: bool,
    pub dynamic_thresholding_ratio: f64,
    pub sample_max_value: f64,
    /// Rescale the betas to zero terminal SNR (arXiv 2305.08891, Algorithm 1).
    pub rescale_betas_zero_snr: bool,
}

impl Default for SchedulerConfig {
    /// diffusers' constructor defaults (the same for DDPM and DDIM where both have the field).
    fn default() -> Self {
        SchedulerConfig {
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: "linear".into(),
            trained_betas: None,
            prediction_type: "epsilon".into(),
            variance_type: None,
            timestep_spacing: "leading".into(),
            steps_offset: 0,
            set_alpha_to_one: true,
            clip_sample: true,
            clip_sample_range: 1.0,
            thresholding: false,
            dynamic_thresholding_ratio: 0.995,
            sample_max_value: 1.0,
            rescale_betas_zero_snr: false,
        }
    }
}

/// The most training timesteps a config may declare (diffusers' models use 1000). A scheduler
/// allocates a few tables of this length, so a corrupt `num_train_timesteps` is refused rather
/// than allocated.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

pub(crate) const BETA_SCHEDULES: [&str; 3] = ["linear", "scaled_linear", "squaredcos_cap_v2"];
pub(crate) const PREDICTION_TYPES: [&str; 3] = ["epsilon", "v_prediction", "sample"];
pub(crate) const SPACINGS: [&str; 3] = ["leading", "trailing", "linspace"];
/// The variance types diffusers' DDPMScheduler names. "fixed_large_log" is accepted here (DDIM
/// ignores the field) but refused by a DDPM scheduler: diffusers' step takes the square root of
/// log β there, which is NaN.
pub(crate) const VARIANCE_TYPES: [&str; 6] = [
    "fixed_small",
    "fixed_small_log",
    "fixed_large",
    "fixed_large_log",
    "learned",
    "learned_range",
];

pub(crate) fn config_err<T>(
    field: &str,
    value: impl std::fmt::Display,
    detail: impl Into<String>,
) -> Result<T> {
    Err(Error::Config {
        field: field.into(),
        value: value.to_string(),
        detail: detail.into(),
    })
}

fn one_of<T>(field: &str, value: &str, allowed: &[&str], why: &str) -> Result<T> {
    config_err(
        field,
        format!("{value:?}"),
        format!("unsupported{why}; use one of {allowed:?}"),
    )
}

impl SchedulerConfig {
    /// Parse a diffusers `scheduler_config.json` and [`validate`](Self::validate) it. A field of
    /// the wrong type is reported by name.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).or_else(|e| {
            config_err(
                "(file)",
                "scheduler_config.json",
                format!("is not valid JSON: {e}"),
            )
        })?;
        let Some(fields) = value.as_object() else {
            return config_err("(file)", "scheduler_config.json", "must hold a JSON object");
        };
        let config = match SchedulerConfig::deserialize(&value) {
            Ok(c) => c,
            Err(e) => {
                // serde_json names no field for a type error: find it by parsing one field at a
                // time (every other field takes its default).
                for (key, v) in fields {
                    let single =
                        serde_json::Value::Object([(key.clone(), v.clone())].into_iter().collect());
                    if let Err(e) = SchedulerConfig::deserialize(&single) {
                        return config_err(key, v, format!("has the wrong type: {e}"));
                    }
                }
                return config_err("(file)", "scheduler_config.json", e.to_string());
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Check every value either scheduler reads; an unsupported one is an [`Error::Config`] naming
    /// the field, the value and what is supported.
    pub fn validate(&self) -> Result<()> {
        if self.num_train_timesteps == 0 {
            return config_err("num_train_timesteps", 0, "must be at least 1");
        }
        if self.num_train_timesteps > MAX_TRAIN_TIMESTEPS {
            return config_err(
                "num_train_timesteps",
                self.num_train_timesteps,
                format!("must be at most {MAX_TRAIN_TIMESTEPS} (is the config corrupt?)"),
            );
        }
        // "leading" timesteps add it to each step: bounded so the sum cannot overflow.
        if self.steps_offset > self.num_train_timesteps {
            return config_err(
                "steps_offset",
                self.steps_offset,
                format!(
                    "must not exceed num_train_timesteps ({}); diffusers' configs use 0 or 1",
                    self.num_train_timesteps
                ),
            );
        }
        if let Some(betas) = &self.trained_betas {
            if betas.len() != self.num_train_timesteps {
                return config_err(
                    "trained_betas",
                    format!("[{} values]", betas.len()),
                    format!(
                        "must hold num_train_timesteps = {} values",
                        self.num_train_timesteps
                    ),
                );
            }
            if let Some(b) = betas.iter().find(|b| !(0.0..1.0).contains(*b)) {
                return config_err("trained_betas", b, "every beta must lie in [0, 1)");
            }
        } else {
            if !BETA_SCHEDULES.contains(&self.beta_schedule.as_str()) {
                return one_of(
                    "beta_schedule",
                    &self.beta_schedule,
                    &BETA_SCHEDULES,
                    " (sigmoid and laplace are not implemented)",
                );
            }
            for (field, v) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
                if !(0.0..1.0).contains(&v) {
                    return config_err(field, v, "must lie in [0, 1)");
                }
            }
        }
        if !PREDICTION_TYPES.contains(&self.prediction_type.as_str()) {
            return one_of(
                "prediction_type",
                &self.prediction_type,
                &PREDICTION_TYPES,
                "",
            );
        }
        if !SPACINGS.contains(&self.timestep_spacing.as_str()) {
            return one_of("timestep_spacing", &self.timestep_spacing, &SPACINGS, "");
        }
        if let Some(v) = &self.variance_type {
            if !VARIANCE_TYPES.contains(&v.as_str()) {
                return one_of("variance_type", v, &VARIANCE_TYPES, "");
            }
        }
        if !(self.clip_sample_range.is_finite() && self.clip_sample_range >= 0.0) {
            return config_err(
                "clip_sample_range",
                self.clip_sample_range,
                "must be finite and not negative",
            );
        }
        if !(0.0..=1.0).contains(&self.dynamic_thresholding_ratio) {
            return config_err(
                "dynamic_thresholding_ratio",
                self.dynamic_thresholding_ratio,
                "must lie in [0, 1] (it is a quantile)",
            );
        }
        if !(self.sample_max_value.is_finite() && self.sample_max_value > 0.0) {
            return config_err(
                "sample_max_value",
                self.sample_max_value,
                "must be finite and positive",
            );
        }
        Ok(())
    }

    /// The DDPM variance type ("fixed_small" when absent, as diffusers' default).
    pub fn variance_type_or_default(&self) -> &str {
        self.variance_type.as_deref().unwrap_or("fixed_small")
    }
}
