//! Fuzzing scheduler_config.json (engine::sched::SchedulerConfig): the IF fixtures' DDPM and
//! DDIM configs with fields removed, mistyped, added or set to absurd values, or their bytes
//! mutated. Each must parse, validate and build both schedulers with a few step counts, or fail
//! with an error naming the field; never panic, hang, or allocate tables of the size a corrupt
//! `num_train_timesteps` claims. (The file's path is named by the pipeline folder that reads
//! it: tests/fuzz_pipeline_folder.rs of the root package.)

#[path = "../../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::{budget, fixture_bytes, guarded, json, mutate};
use iterinv_engine::sched::{Scheduler, SchedulerConfig, SchedulerKind, MAX_TRAIN_TIMESTEPS};
use iterinv_engine::Error;
use proptest::prelude::*;
use serde_json::Value;

fn strategy() -> impl Strategy<Value = Vec<u8>> {
    let ddpm = fixture_bytes("trained_cascade/stage1/scheduler/scheduler_config.json");
    let mut ddim: Value = serde_json::from_slice(&ddpm).unwrap();
    ddim["_class_name"] = "DDIMScheduler".into();
    ddim["set_alpha_to_one"] = false.into();
    ddim["timestep_spacing"] = "trailing".into();
    ddim["steps_offset"] = 1.into();
    let ddim_bytes = serde_json::to_vec_pretty(&ddim).unwrap();
    prop_oneof![
        mutate::mutated(ddpm.clone()),
        json::edited(serde_json::from_slice(&ddpm).unwrap()),
        mutate::mutated(ddim_bytes),
        json::edited(ddim),
    ]
}

/// Parse, then build both kinds and set a few schedules; the first error, as text.
fn run(text: String) -> Result<(), String> {
    let config = SchedulerConfig::from_json_str(&text).map_err(|e| describe(&e))?;
    assert!(config.num_train_timesteps <= MAX_TRAIN_TIMESTEPS);
    for kind in [SchedulerKind::Ddpm, SchedulerKind::Ddim] {
        let Ok(mut s) = Scheduler::new(kind, config.clone()).map_err(|e| describe(&e)) else {
            continue;
        };
        for n in [1, 7, 50, config.num_train_timesteps] {
            if s.set_timesteps(n).is_ok() {
                assert_eq!(s.timesteps().len(), n, "{n} steps");
            }
        }
    }
    Ok(())
}

/// A config error must name a field; anything else is a bug in the parser.
fn describe(e: &Error) -> String {
    match e {
        Error::Config { field, .. } => {
            assert!(!field.is_empty(), "a config error names its field: {e}");
            e.to_string()
        }
        other => panic!("a scheduler config fails as Error::Config, not {other:?}"),
    }
}

proptest! {
    #![proptest_config(fuzz_support::config(3000))]

    #[test]
    fn mutated_scheduler_configs_build_or_name_the_field(bytes in strategy()) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let len = text.len();
        let _ = guarded("scheduler_config.json", budget(len, 64), move || run(text));
    }
}

#[test]
fn a_huge_num_train_timesteps_is_refused_before_the_tables_are_allocated() {
    let text = r#"{"num_train_timesteps": 1000000000000}"#.to_string();
    let msg = guarded("scheduler", budget(0, 0), move || run(text)).unwrap_err();
    assert!(msg.contains("num_train_timesteps"), "{msg}");
}

#[test]
fn a_steps_offset_that_would_overflow_the_leading_timesteps_is_refused() {
    let text = r#"{"steps_offset": 18446744073709551615}"#.to_string();
    let msg = guarded("scheduler", budget(0, 0), move || run(text)).unwrap_err();
    assert!(msg.contains("steps_offset"), "{msg}");
}
