//! An evaluation dataset: a folder of images and the prompt of each, listed in `prompts.jsonl`
//! (one `{"image": "cat.png", "prompt": "a photo of a cat"}` object a line) or `captions.txt`
//! (one `cat.png: a photo of a cat` a line). Both are user files, so every line is checked and a
//! bad one is an error naming the file and the line; an image file that is missing or unreadable
//! is not a dataset error but that image's failure, found when the image is run.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use iterinv_models::{Error, Result};
use serde_json::Value;

/// The listing files, in the order they are looked for.
pub const JSONL_FILE: &str = "prompts.jsonl";
pub const CAPTIONS_FILE: &str = "captions.txt";

/// A listing larger than this is refused before it is read (a million prompts of 64 words fit).
pub const MAX_LISTING_BYTES: u64 = 64 << 20;
/// A longer prompt is refused (T5 and CLIP read 77 tokens; this is far past any caption).
pub const MAX_PROMPT_CHARS: usize = 10_000;

/// A listing's parser: its text and its path (for errors) to the items.
type Parser = fn(&str, &Path) -> Result<Vec<Item>>;

/// One image of the dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The image's name in the results: its path in the dataset without the extension, with
    /// every character other than letters, digits, `-`, `_` and `.` (path separators included)
    /// as `_`. Unique within a dataset.
    pub id: String,
    /// The image's path relative to the dataset folder, as listed.
    pub file: PathBuf,
    pub prompt: String,
}

/// A dataset: its folder and its images, sorted by id (so that the order, and with it the
/// shards, do not depend on how the listing is ordered).
#[derive(Clone, Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub items: Vec<Item>,
}

impl Dataset {
    /// Read the listing of the dataset in `root` (`prompts.jsonl`, else `captions.txt`).
    pub fn read(root: &Path) -> Result<Dataset> {
        let jsonl = root.join(JSONL_FILE);
        let captions = root.join(CAPTIONS_FILE);
        let (listing, parse): (PathBuf, Parser) = match (jsonl.is_file(), captions.is_file()) {
            (true, true) => {
                return Err(Error::Input {
                    what: format!("dataset {}", root.display()),
                    detail: format!(
                        "holds both {JSONL_FILE} and {CAPTIONS_FILE}; keep the one that \
                             lists the prompts"
                    ),
                })
            }
            (true, false) => (jsonl, parse_jsonl),
            (false, true) => (captions, parse_captions),
            (false, false) => {
                return Err(Error::NotFound {
                    path: jsonl,
                    holds: format!(
                        "a dataset folder lists its images and prompts in {JSONL_FILE} \
                             ({{\"image\": ..., \"prompt\": ...}} a line) or {CAPTIONS_FILE} \
                             (`file: caption` a line)"
                    ),
                })
            }
        };
        let io = |source| Error::Io {
            path: listing.clone(),
            source,
        };
        let size = std::fs::metadata(&listing).map_err(io)?.len();
        if size > MAX_LISTING_BYTES {
            return Err(Error::Input {
                what: listing.display().to_string(),
                detail: format!("is {size} bytes; a listing may hold {MAX_LISTING_BYTES}"),
            });
        }
        let text = std::fs::read_to_string(&listing).map_err(io)?;
        Ok(Dataset {
            root: root.to_path_buf(),
            items: parse(&text, &listing)?,
        })
    }

    /// The image file of `item`.
    pub fn path(&self, item: &Item) -> PathBuf {
        self.root.join(&item.file)
    }
}

/// The items of a `prompts.jsonl` text (`origin` names it in errors), sorted by id. Blank lines
/// are skipped; other fields than `image` and `prompt` are ignored.
pub fn parse_jsonl(text: &str, origin: &Path) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for (n, line) in numbered(text) {
        let bad = |detail: String| line_error(origin, n, detail);
        let value: Value =
            serde_json::from_str(line).map_err(|e| bad(format!("is not a JSON object: {e}")))?;
        let field = |key: &str| -> Result<String> {
            match value.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(bad(format!("`{key}` must be a string, got {other}"))),
                None if value.is_object() => Err(bad(format!(
                    "has no `{key}`; each line is {{\"image\": \"file.png\", \"prompt\": \"...\"}}"
                ))),
                None => Err(bad(
                    "is not a JSON object; each line is {\"image\": \"file.png\", \"prompt\": \"...\"}"
                        .into(),
                )),
            }
        };
        let image = field("image")?;
        let prompt = field("prompt")?;
        items.push(item(&image, &prompt, origin, n)?);
    }
    finish(items, origin)
}

/// The items of a `captions.txt` text: `file: caption` lines, split at the first `:`; blank lines
/// and lines starting with `#` are skipped.
pub fn parse_captions(text: &str, origin: &Path) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for (n, line) in numbered(text) {
        if line.starts_with('#') {
            continue;
        }
        let Some((image, prompt)) = line.split_once(':') else {
            return Err(line_error(
                origin,
                n,
                "has no `:`; each line is `file.png: the caption`".into(),
            ));
        };
        items.push(item(image.trim(), prompt.trim(), origin, n)?);
    }
    finish(items, origin)
}

/// Non-blank lines, trimmed, with their numbers from 1 (a byte-order mark is dropped).
fn numbered(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.trim_start_matches('\u{feff}')
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

fn line_error(origin: &Path, line: usize, detail: String) -> Error {
    Error::Input {
        what: format!("{} line {line}", origin.display()),
        detail,
    }
}

fn item(image: &str, prompt: &str, origin: &Path, line: usize) -> Result<Item> {
    let bad = |detail: String| line_error(origin, line, detail);
    let file = PathBuf::from(image);
    // Only plain relative paths inside the dataset folder: results are named after them, and a
    // listing must not point the run at files elsewhere.
    let plain = file.components().all(|c| matches!(c, Component::Normal(_)));
    if image.is_empty() || !plain {
        return Err(bad(format!(
            "image `{image}` must be a relative path inside the dataset folder (no `..`, no root)"
        )));
    }
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return Err(bad(format!("image `{image}` has an empty prompt")));
    }
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(bad(format!(
            "the prompt is longer than {MAX_PROMPT_CHARS} characters"
        )));
    }
    Ok(Item {
        id: id_of(&file),
        file,
        prompt: prompt.to_string(),
    })
}

/// The results' name of an image file (see [`Item::id`]).
pub fn id_of(file: &Path) -> String {
    let without_ext = file.with_extension("");
    let text = without_ext.to_string_lossy();
    let mut id: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A leading dot would hide the folder (and `.`/`..` would be no folder of its own).
    if id.is_empty() || id.starts_with('.') {
        id.insert(0, '_');
    }
    id
}

fn finish(mut items: Vec<Item>, origin: &Path) -> Result<Vec<Item>> {
    if items.is_empty() {
        return Err(Error::Input {
            what: origin.display().to_string(),
            detail: "lists no image".into(),
        });
    }
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for it in &items {
        if let Some(other) = seen.insert(&it.id, &it.file) {
            return Err(Error::Input {
                what: origin.display().to_string(),
                detail: format!(
                    "lists `{}` and `{}`, which would share the results folder `{}`; rename one",
                    other.display(),
                    it.file.display(),
                    it.id
                ),
            });
        }
    }
    items.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> &'static Path {
        Path::new("data/prompts.jsonl")
    }

    #[test]
    fn jsonl_lines_become_items_sorted_by_id() {
        let text = "\u{feff}{\"image\": \"b/dog 1.jpg\", \"prompt\": \" A dog \", \"x\": 1}\n\n\
                    {\"prompt\": \"a cat\", \"image\": \"cat.png\"}\n";
        let items = parse_jsonl(text, origin()).unwrap();
        assert_eq!(
            items,
            vec![
                Item {
                    id: "b_dog_1".into(),
                    file: "b/dog 1.jpg".into(),
                    prompt: "A dog".into()
                },
                Item {
                    id: "cat".into(),
                    file: "cat.png".into(),
                    prompt: "a cat".into()
                },
            ]
        );
    }

    #[test]
    fn captions_split_at_the_first_colon() {
        let text = "# from BLIP-2\ncat.png: a cat: sitting\r\n  dog.jpg :a dog\n";
        let items = parse_captions(text, Path::new("captions.txt")).unwrap();
        assert_eq!(items[0].file, PathBuf::from("cat.png"));
        assert_eq!(items[0].prompt, "a cat: sitting");
        assert_eq!(items[1].id, "dog");
        assert_eq!(items[1].prompt, "a dog");
    }

    /// Every bad line is an error naming the file, the line and what is wrong.
    #[test]
    fn bad_lines_are_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("{\"image\": \"a.png\"", "line 1` is not a JSON object"),
            ("[1, 2]", "line 1` is not a JSON object"),
            ("\n{\"image\": \"a.png\"}", "line 2` has no `prompt`"),
            ("{\"image\": 3, \"prompt\": \"p\"}", "`image` must be a string"),
            ("{\"image\": \"../a.png\", \"prompt\": \"p\"}", "relative path"),
            ("{\"image\": \"/etc/a.png\", \"prompt\": \"p\"}", "relative path"),
            ("{\"image\": \"a.png\", \"prompt\": \"  \"}", "empty prompt"),
            (
                "{\"image\": \"a.png\", \"prompt\": \"p\"}\n{\"image\": \"a.jpg\", \"prompt\": \"q\"}",
                "would share the results folder `a`",
            ),
            ("", "lists no image"),
        ];
        for (text, expected) in cases {
            let e = parse_jsonl(text, origin()).unwrap_err().to_string();
            assert!(
                e.contains("data/prompts.jsonl") && e.contains(expected),
                "{text:?}: {e}"
            );
        }
        let e = parse_captions("a.png a cat", Path::new("c.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.txt line 1") && e.contains("has no `:`"),
            "{e}"
        );
        let long = format!("a.png: {}", "x".repeat(MAX_PROMPT_CHARS + 1));
        let e = parse_captions(&long, Path::new("c.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than"), "{e}");
    }

    #[test]
    fn ids_are_safe_folder_names() {
        assert_eq!(id_of(Path::new("a/b c.png")), "a_b_c");
        assert_eq!(id_of(Path::new(".hidden.png")), "_.hidden");
        assert_eq!(id_of(Path::new("x.tar.gz")), "x.tar");
        assert_eq!(id_of(Path::new("ünï.png")), "_n_");
    }

    #[test]
    fn a_folder_lists_its_images_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = Dataset::read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("prompts.jsonl") && e.contains("captions.txt"),
            "{e}"
        );
        std::fs::write(dir.path().join(CAPTIONS_FILE), "a.png: a cat\n").unwrap();
        let d = Dataset::read(dir.path()).unwrap();
        assert_eq!(d.path(&d.items[0]), dir.path().join("a.png"));
        std::fs::write(dir.path().join(JSONL_FILE), "").unwrap();
        let e = Dataset::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("both"), "{e}");
    }
}
