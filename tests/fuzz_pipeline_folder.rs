//! Fuzzing a pipeline folder's own files (src/pipeline/folder.rs): `model_index.json` and
//! `scheduler/scheduler_config.json` of the trained stage-I fixture, edited or mutated. Opening
//! the folder and building its scheduler must succeed or fail with an error naming the file
//! (the scheduler config's fields themselves are fuzzed in engine/tests/fuzz_scheduler_config.rs).

mod fuzz_support;

use std::path::Path;

use fuzz_support::{assert_names_file, budget, fixture_bytes, guarded, json, mutate};
use iterinv::pipeline::{PipelineFolder, Stage};
use proptest::prelude::*;

const INDEX: &str = "trained_cascade/stage1/model_index.json";
const SCHEDULER: &str = "trained_cascade/stage1/scheduler/scheduler_config.json";

fn strategy(rel: &str) -> impl Strategy<Value = Vec<u8>> {
    let bytes = fixture_bytes(rel);
    let value = serde_json::from_slice(&bytes).unwrap();
    prop_oneof![mutate::mutated(bytes), json::edited(value)]
}

/// A folder with `model_index.json` and `scheduler/scheduler_config.json`; open it and build
/// its scheduler with 50 steps.
fn open(dir: &Path, index: &[u8], scheduler: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(dir.join("scheduler")).unwrap();
    std::fs::write(dir.join("model_index.json"), index).unwrap();
    std::fs::write(dir.join("scheduler/scheduler_config.json"), scheduler).unwrap();
    let d = dir.to_path_buf();
    guarded(
        "pipeline folder",
        budget(index.len() + scheduler.len(), 64),
        move || {
            let folder = PipelineFolder::open(&d, Stage::One).map_err(|e| e.to_string())?;
            let mut s = folder
                .scheduler("scheduler", None)
                .map_err(|e| e.to_string())?;
            let _ = s.set_timesteps(50);
            Ok(())
        },
    )
}

proptest! {
    #![proptest_config(fuzz_support::config(1500))]

    #[test]
    fn mutated_model_indexes_open_or_name_the_file(index in strategy(INDEX)) {
        let dir = tempfile::tempdir().unwrap();
        if let Err(msg) = open(dir.path(), &index, &fixture_bytes(SCHEDULER)) {
            assert_names_file(&msg, &dir.path().join("model_index.json"));
        }
    }

    #[test]
    fn mutated_model_indexes_open_as_super_resolution_or_name_the_file(index in strategy(INDEX)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model_index.json"), &index).unwrap();
        let d = dir.path().to_path_buf();
        let opened = guarded("pipeline folder", budget(index.len(), 64), move || {
            PipelineFolder::open_super_resolution(&d)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Err(msg) = opened {
            assert_names_file(&msg, &dir.path().join("model_index.json"));
        }
    }

    #[test]
    fn mutated_scheduler_configs_build_or_name_the_file(config in strategy(SCHEDULER)) {
        let dir = tempfile::tempdir().unwrap();
        if let Err(msg) = open(dir.path(), &fixture_bytes(INDEX), &config) {
            assert_names_file(&msg, &dir.path().join("scheduler/scheduler_config.json"));
        }
    }
}

#[test]
fn a_huge_num_train_timesteps_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let msg = open(
        dir.path(),
        &fixture_bytes(INDEX),
        br#"{"_class_name": "DDPMScheduler", "num_train_timesteps": 4611686018427387904}"#,
    )
    .unwrap_err();
    assert_names_file(&msg, &dir.path().join("scheduler/scheduler_config.json"));
    assert!(msg.contains("num_train_timesteps"), "{msg}");
}
