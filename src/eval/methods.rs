//! The configurations an evaluation compares (`--methods`): each a stage-I method and a
//! super-resolution method, named `STAGE1+SR` (e.g. `nti+iterinv`) in every result.

use iterinv_models::{Error, Result};

use crate::pipeline::inversion::{parse_method, SrMethod, Stage1Method};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodSpec {
    pub stage1: Stage1Method,
    pub sr: SrMethod,
}

/// The presets `--methods` knows besides `STAGE1+SR` pairs.
pub const PRESETS: &str = "default (the stage and method flags), faithful (npi+iterinv-faithful: \
                           the paper's headline recipe, NPI at stage I and its code's plain \
                           IterInv), ddim (ddim+ddim: the DDIM baseline)";

impl MethodSpec {
    /// The name results use: `nti+iterinv`, `ddim+ddim`, ...
    pub fn name(&self) -> String {
        format!("{}+{}", self.stage1.name(), self.sr.name())
    }
}

/// The methods of a comma-separated list of presets and `STAGE1+SR` pairs, in order; `default`
/// is the configuration the command's own flags give.
pub fn parse_methods(list: &str, default: MethodSpec) -> Result<Vec<MethodSpec>> {
    let mut out: Vec<MethodSpec> = Vec::new();
    for entry in list.split(',').map(str::trim) {
        let bad = |detail: String| Error::Input {
            what: format!("method `{entry}` of --methods"),
            detail,
        };
        let spec = match entry {
            "default" => default,
            "faithful" => MethodSpec {
                stage1: Stage1Method::Npi,
                sr: SrMethod::IterInvFaithful,
            },
            "ddim" => MethodSpec {
                stage1: Stage1Method::Ddim,
                sr: SrMethod::Ddim,
            },
            "" => return Err(bad("is empty; separate methods with single commas".into())),
            pair => {
                let Some((s1, sr)) = pair.split_once('+') else {
                    return Err(bad(format!(
                        "is neither a preset nor STAGE1+SR (e.g. nti+iterinv); presets: {PRESETS}"
                    )));
                };
                let stage1 = parse_method(&Stage1Method::ALL, s1.trim(), Stage1Method::name)
                    .map_err(|e| bad(e.to_string()))?;
                let sr = parse_method(&SrMethod::ALL, sr.trim(), SrMethod::name)
                    .map_err(|e| bad(e.to_string()))?;
                MethodSpec { stage1, sr }
            }
        };
        if out.contains(&spec) {
            return Err(bad(format!(
                "is {} again; each configuration once",
                spec.name()
            )));
        }
        out.push(spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: MethodSpec = MethodSpec {
        stage1: Stage1Method::Nti,
        sr: SrMethod::IterInv,
    };

    #[test]
    fn presets_and_pairs() {
        let names = |list| -> Vec<String> {
            parse_methods(list, DEFAULT)
                .unwrap()
                .iter()
                .map(MethodSpec::name)
                .collect()
        };
        assert_eq!(
            names("default, faithful,ddim"),
            ["nti+iterinv", "npi+iterinv-faithful", "ddim+ddim"]
        );
        assert_eq!(names("nti-p2p+fixed-point"), ["nti-p2p+fixed-point"]);
    }

    #[test]
    fn bad_lists_are_clear_errors() {
        for (list, expected) in [
            ("default,nti+iterinv", "again"),
            ("default,,ddim", "is empty"),
            ("best", "neither a preset"),
            ("nti+magic", "expected one of iterinv"),
            ("magic+iterinv", "expected one of nti"),
        ] {
            let e = parse_methods(list, DEFAULT).unwrap_err().to_string();
            assert!(
                e.contains("--methods") && e.contains(expected),
                "{list}: {e}"
            );
        }
    }
}
