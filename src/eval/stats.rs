//! Mean ± standard deviation over images, and the JSON form of scores that may not be finite.

use serde::{Deserialize, Serialize};

/// Mean and sample standard deviation (n − 1 in the denominator, as pandas' `std`; a dataset of
/// a few dozen images is a sample of the photos a method will meet) of one score over images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    #[serde(with = "num")]
    pub mean: f64,
    /// None for fewer than two images.
    #[serde(with = "num::opt")]
    pub std: Option<f64>,
}

impl Stat {
    /// None for no values. An infinite or NaN value makes the mean so (an identical image's
    /// infinite PSNR is an honest infinity; a diverged method's NaN is not hidden).
    pub fn of(values: &[f64]) -> Option<Stat> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        Some(Stat { mean, std })
    }
}

/// serde for `f64` scores: finite numbers as JSON numbers, the others as the strings `inf`,
/// `-inf` and `NaN` (JSON has no such numbers, and `null` would lose which it was).
pub mod num {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                "NaN" => Ok(f64::NAN),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, `inf`, `-inf` or `NaN`, got `{other}`"
                ))),
            },
        }
    }

    /// The same for `Option<f64>` (None is `null`).
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super")] f64);

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// A score as the Markdown table shows it: `mean ± std` with `decimals` digits, `–` for none.
pub fn display(stat: Option<Stat>, decimals: usize) -> String {
    match stat {
        None => "–".into(),
        Some(Stat { mean, std }) => match std {
            Some(s) if mean.is_finite() => format!("{mean:.decimals$} ± {s:.decimals$}"),
            _ => format!("{mean:.decimals$}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the two-pass definition written out by hand for these numbers.
    #[test]
    fn mean_and_sample_std() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32, so the sample variance
        // is 32/7.
        let s = Stat::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert!((s.std.unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-15);
        assert_eq!(
            Stat::of(&[3.5]),
            Some(Stat {
                mean: 3.5,
                std: None
            })
        );
        assert_eq!(Stat::of(&[]), None);
        let inf = Stat::of(&[1.0, f64::INFINITY]).unwrap();
        assert_eq!(inf.mean, f64::INFINITY);
        assert!(Stat::of(&[1.0, f64::NAN]).unwrap().mean.is_nan());
    }

    #[test]
    fn display_rounds_and_marks_what_is_missing() {
        let s = Stat::of(&[40.0, 41.25]).unwrap();
        assert_eq!(display(Some(s), 2), "40.62 ± 0.88");
        assert_eq!(display(Stat::of(&[0.5]), 4), "0.5000");
        assert_eq!(display(Stat::of(&[1.0, f64::INFINITY]), 2), "inf");
        assert_eq!(display(None, 2), "–");
    }

    #[test]
    fn non_finite_numbers_survive_json() {
        let s = Stat {
            mean: f64::INFINITY,
            std: Some(f64::NAN),
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, r#"{"mean":"inf","std":"NaN"}"#);
        let back: Stat = serde_json::from_str(&text).unwrap();
        assert_eq!(back.mean, f64::INFINITY);
        assert!(back.std.unwrap().is_nan());
        let none: Stat = serde_json::from_str(r#"{"mean":-1.5,"std":null}"#).unwrap();
        assert_eq!(none.std, None);
        assert!(serde_json::from_str::<Stat>(r#"{"mean":"big","std":null}"#).is_err());
    }
}
