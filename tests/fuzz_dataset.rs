//! Fuzzing `iterinv eval`'s dataset listings (src/eval/dataset.rs): `prompts.jsonl` and
//! `captions.txt`, mutated or (the JSON lines) edited. Reading the dataset must give a listing
//! `eval` can run — every image a plain relative path inside the folder, a non-empty prompt of
//! bounded length, ids unique and sorted — or one error naming the listing; never a panic, a hang
//! or an allocation out of proportion to the text.

mod fuzz_support;

use std::collections::HashSet;
use std::path::{Component, Path};

use fuzz_support::{assert_names_file, budget, guarded, mutate};
use iterinv::eval::dataset::{Dataset, MAX_PROMPT_CHARS};
use proptest::prelude::*;

const JSONL: &str = r#"{"image": "cat.png", "prompt": "a photo of a cat"}
{"image": "photos/dog 2.jpg", "prompt": "a dog, running", "extra": 1}

{"image": "bird.png", "prompt": "a bird"}
"#;

const CAPTIONS: &str = "# photos and their captions
cat.png: a photo of a cat
photos/dog 2.jpg: a dog: running
\u{feff}bird.png:a bird
";

/// Read `listing` as the dataset folder's file `name`; check what a successful read promises.
fn read(name: &'static str, listing: Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), &listing).unwrap();
    let root = dir.path().to_path_buf();
    let read = guarded("dataset listing", budget(listing.len(), 64), move || {
        Dataset::read(&root).map_err(|e| e.to_string())
    });
    match read {
        Err(msg) => assert_names_file(&msg, &dir.path().join(name)),
        Ok(ds) => {
            let mut ids = HashSet::new();
            for item in &ds.items {
                assert!(
                    item.file
                        .components()
                        .all(|c| matches!(c, Component::Normal(_))),
                    "{:?} leaves the dataset folder",
                    item.file
                );
                assert!(!item.prompt.trim().is_empty());
                assert!(item.prompt.chars().count() <= MAX_PROMPT_CHARS);
                assert!(ids.insert(item.id.clone()), "duplicate id {}", item.id);
            }
            assert!(ds.items.windows(2).all(|w| w[0].id < w[1].id), "unsorted");
        }
    }
}

proptest! {
    #![proptest_config(fuzz_support::config(1500))]

    #[test]
    fn mutated_prompts_jsonl_reads_or_names_the_file(
        listing in mutate::mutated(JSONL.as_bytes().to_vec())
    ) {
        read("prompts.jsonl", listing);
    }

    #[test]
    fn mutated_captions_txt_reads_or_names_the_file(
        listing in mutate::mutated(CAPTIONS.as_bytes().to_vec())
    ) {
        read("captions.txt", listing);
    }
}

#[test]
fn the_untampered_listings_read() {
    for (name, text) in [("prompts.jsonl", JSONL), ("captions.txt", CAPTIONS)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
        let ds = Dataset::read(dir.path()).unwrap();
        let files: Vec<&Path> = ds.items.iter().map(|i| i.file.as_path()).collect();
        assert_eq!(files.len(), 3, "{name}");
        assert!(files.contains(&Path::new("photos/dog 2.jpg")), "{name}");
    }
}
