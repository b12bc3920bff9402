//! The number flags, checked before any GPU, model or file is opened: clap refuses what is not a
//! number of the flag's type (`-1` for a count, `abc`); these refuse what parses but means
//! nothing (NaN or infinite scales, zero steps, a negative tolerance) or would be sized absurdly
//! (more steps than any scheduler has timesteps), naming the flag and the accepted range.

use anyhow::{bail, Result};
use iterinv::engine::sched::MAX_TRAIN_TIMESTEPS;
use iterinv::models::text::tokenizer::MAX_TOKENS;

/// `v` must be a finite number.
pub fn finite(flag: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        bail!("--{flag} is {v}; it must be a finite number");
    }
    Ok(())
}

/// `v` must be finite and not negative.
pub fn finite_non_negative(flag: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        bail!("--{flag} is {v}; it must be a finite number, 0 or more");
    }
    Ok(())
}

/// A count of sampling or inversion steps: 1 to [`MAX_TRAIN_TIMESTEPS`] (no scheduler has more
/// timesteps, and per-step state is allocated for each).
pub fn steps(flag: &str, v: usize) -> Result<()> {
    if !(1..=MAX_TRAIN_TIMESTEPS).contains(&v) {
        bail!("--{flag} is {v}; it must be between 1 and {MAX_TRAIN_TIMESTEPS}");
    }
    Ok(())
}

/// A token count: 1 to [`MAX_TOKENS`].
pub fn tokens(flag: &str, v: usize) -> Result<()> {
    if !(1..=MAX_TOKENS).contains(&v) {
        bail!("--{flag} is {v}; it must be between 1 and {MAX_TOKENS}");
    }
    Ok(())
}

/// The most inner iterations per timestep (NTI's Adam steps, IterInv's gradient steps,
/// fixed-point passes) a command line may ask for: the references use 51, 21 and 10; a million
/// would run for days with no message.
pub const MAX_INNER_STEPS: usize = 10_000;

/// An inner-loop count: at most [`MAX_INNER_STEPS`] (0 allowed where `zero` is).
pub fn inner_steps(flag: &str, v: usize, zero: bool) -> Result<()> {
    let min = usize::from(!zero);
    if !(min..=MAX_INNER_STEPS).contains(&v) {
        bail!("--{flag} is {v}; it must be between {min} and {MAX_INNER_STEPS}");
    }
    Ok(())
}

/// A noise level: a timestep of the noising scheduler, below [`MAX_TRAIN_TIMESTEPS`].
pub fn noise_level(flag: &str, v: usize) -> Result<()> {
    if v >= MAX_TRAIN_TIMESTEPS {
        bail!("--{flag} is {v}; it must be a timestep below {MAX_TRAIN_TIMESTEPS}");
    }
    Ok(())
}

/// A memory size for `--max-gpu-memory`: bytes, or a number with a unit (`16GiB`, `16G`,
/// `1500MiB`, `512M`, `64KiB`; K/M/G/T are binary, as GPU memory is counted), at least 1 MiB.
pub fn memory_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 16GiB, 1500MiB or 1073741824"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("`{other}` is not a unit: use KiB, MiB, GiB or TiB")),
    };
    let bytes = value * scale as f64;
    if !(bytes.is_finite() && bytes >= (1u64 << 20) as f64 && bytes <= (1u64 << 50) as f64) {
        return Err(format!("`{text}` must be between 1 MiB and 1 PiB"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    //! Fuzzing the number flags of every subcommand: awkward numbers as text (0, -1, NaN, inf,
    //! 1e999, 2⁶⁴, fractions where counts belong) and arbitrary ones. Each command line must be
    //! refused by clap or by the checks with a message naming the flag, or accepted with values
    //! the engine can use. Runs without a GPU: checks come before any device is opened.
    use crate::fuzz_support;

    use clap::Parser;
    use proptest::prelude::*;

    use crate::{Cli, Command};
    use iterinv::engine::sched::MAX_TRAIN_TIMESTEPS;

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(fuzz_support::mutate::NUMBERS.to_vec()).prop_map(String::from),
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| v.to_string()),
            (0u64..2000).prop_map(|v| v.to_string()),
            Just("inf".to_string()),
            Just("-inf".to_string()),
            Just("nan".to_string()),
            Just("".to_string()),
            Just("1_000".to_string()),
        ]
    }

    /// Parse `args` and check its numbers; an error must name `flag`.
    fn check(args: &[&str], flag: &str) -> Option<Command> {
        let cli = match Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(flag),
                    "clap's error does not name {flag}: {msg}"
                );
                return None;
            }
        };
        match cli.command.check_numbers() {
            Ok(()) => Some(cli.command),
            Err(e) => {
                let msg = format!("{e:#}");
                assert!(msg.contains(flag), "the error does not name {flag}: {msg}");
                None
            }
        }
    }

    const INVERT_FLAGS: [&str; 11] = [
        "--steps",
        "--stage1-untie",
        "--inner-steps",
        "--passes",
        "--tolerance",
        "--guidance",
        "--noise-level",
        "--noise-level3",
        "--seed",
        "--stage2-inner-steps",
        "--stage1-inner-steps",
    ];
    const GENERATE_FLAGS: [&str; 10] = [
        "--steps1",
        "--steps2",
        "--steps3",
        "--guidance1",
        "--guidance2",
        "--guidance3",
        "--noise-level",
        "--noise-level3",
        "--eta",
        "--seed",
    ];

    proptest! {
        #![proptest_config(fuzz_support::config(3000))]

        #[test]
        fn invert_number_flags_are_used_or_refused_by_name(
            flag in proptest::sample::select(INVERT_FLAGS.to_vec()),
            value in number(),
        ) {
            let set = format!("{flag}={value}");
            let args = ["iterinv", "invert", "photo.png", "--prompt", "a cat", "--out", "o", &set];
            if let Some(Command::Invert(a)) = check(&args, flag) {
                let a = &a.cascade;
                prop_assert!(a.steps >= 1 && a.guidance.is_finite());
                prop_assert!(a.tolerance.is_finite() && a.tolerance >= 0.0);
                prop_assert!(a.passes <= super::MAX_INNER_STEPS);
                let inner = [a.inner_steps, a.stage1_inner_steps, a.stage2_inner_steps];
                prop_assert!(inner.iter().flatten().all(|&k| (1..=super::MAX_INNER_STEPS).contains(&k)));
            }
        }

        #[test]
        fn generate_number_flags_are_used_or_refused_by_name(
            flag in proptest::sample::select(GENERATE_FLAGS.to_vec()),
            value in number(),
        ) {
            let set = format!("{flag}={value}");
            let args = ["iterinv", "generate", "--prompt", "a cat", "--out", "o.png", &set];
            if let Some(Command::Generate(a)) = check(&args, flag) {
                prop_assert!(a.steps1 >= 1);
                prop_assert!([a.steps2, a.steps3].iter().flatten().all(|&s| s >= 1));
                prop_assert!(a.guidance1.is_finite());
                let levels = [a.noise_level, a.noise_level3];
                prop_assert!(levels.iter().flatten().all(|&l| l < MAX_TRAIN_TIMESTEPS));
                prop_assert!([a.guidance2, a.guidance3].iter().flatten().all(|g| g.is_finite()));
                prop_assert!(a.eta.is_finite() && a.eta >= 0.0);
            }
        }

        #[test]
        fn tokenize_max_length_is_used_or_refused_by_name(value in number()) {
            let set = format!("--max-length={value}");
            let args = ["iterinv", "tokenize", "--tokenizer", "t", &set, "a cat"];
            if let Some(Command::Tokenize(a)) = check(&args, "--max-length") {
                prop_assert!((1..=super::MAX_TOKENS).contains(&a.max_length));
            }
        }
    }

    proptest! {
        #![proptest_config(fuzz_support::config(3000))]

        #[test]
        fn max_gpu_memory_is_a_size_or_refused_by_name(value in prop_oneof![
            number(),
            (number(), proptest::sample::select(vec!["GiB", "G", "MiB", "m", "kib", "TB", "x", " GiB"]))
                .prop_map(|(n, u)| format!("{n}{u}")),
        ]) {
            let set = format!("--max-gpu-memory={value}");
            let args = ["iterinv", "info", &set];
            if check(&args, "--max-gpu-memory").is_some() {
                let cli = Cli::try_parse_from(args).unwrap();
                let b = cli.max_gpu_memory.expect("set");
                prop_assert!(((1 << 20)..=(1u64 << 50)).contains(&b));
            }
        }
    }

    #[test]
    fn memory_sizes_read_with_binary_units() {
        assert_eq!(super::memory_size("16GiB"), Ok(16 << 30));
        assert_eq!(super::memory_size("16G"), Ok(16 << 30));
        assert_eq!(super::memory_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(super::memory_size("1500MiB"), Ok(1500 << 20));
        assert_eq!(super::memory_size("1048576"), Ok(1 << 20));
        assert!(super::memory_size("1KiB").is_err());
        assert!(super::memory_size("12 parsecs").is_err());
        assert!(super::memory_size("-1G").is_err());
    }

    #[test]
    fn nan_guidance_is_refused_before_a_gpu_is_opened() {
        let args = [
            "iterinv",
            "invert",
            "p.png",
            "--prompt",
            "x",
            "--out",
            "o",
            "--guidance=NaN",
        ];
        assert!(check(&args, "--guidance").is_none());
    }

    #[test]
    fn a_huge_max_length_is_refused_before_the_tokenizer_pads_to_it() {
        let args = [
            "iterinv",
            "tokenize",
            "--tokenizer",
            "t",
            "--max-length=18446744073709551615",
            "x",
        ];
        assert!(check(&args, "--max-length").is_none());
    }
}
