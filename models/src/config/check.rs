//! Small checks `validate()` functions share: each names the field and value it rejects.

use serde::Serialize;

use super::config_err;
use crate::error::Result;

pub(crate) fn positive(field: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(config_err(field, v, "must be positive"));
    }
    Ok(())
}

/// `v` must not exceed `max` (see [`limits`](super::limits)).
pub(crate) fn at_most(field: &str, v: usize, max: usize) -> Result<()> {
    if v > max {
        return Err(config_err(
            field,
            v,
            format!("is larger than iterinv accepts ({max}); is the config corrupt?"),
        ));
    }
    Ok(())
}

/// `v` must be in `1..=max`.
pub(crate) fn in_range(field: &str, v: usize, max: usize) -> Result<()> {
    positive(field, v)?;
    at_most(field, v, max)
}

pub(crate) fn finite_positive(field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(config_err(field, v, "must be a positive finite number"));
    }
    Ok(())
}

pub(crate) fn one_of(field: &str, v: &str, allowed: &[&str]) -> Result<()> {
    if !allowed.contains(&v) {
        let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        return Err(config_err(
            field,
            v,
            format!("iterinv supports {}", list.join(", ")),
        ));
    }
    Ok(())
}

pub(crate) fn one_value(field: &str, v: usize, only: usize) -> Result<()> {
    if v != only {
        return Err(config_err(field, v, format!("iterinv supports {only}")));
    }
    Ok(())
}

pub(crate) fn must_be_null<T: Serialize>(field: &str, v: &Option<T>) -> Result<()> {
    if v.is_some() {
        return Err(config_err(field, v, "iterinv supports only null"));
    }
    Ok(())
}

pub(crate) fn must_be_false(field: &str, v: bool) -> Result<()> {
    if v {
        return Err(config_err(field, v, "iterinv supports only false"));
    }
    Ok(())
}
