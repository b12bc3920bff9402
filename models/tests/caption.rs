//! IF's prompt preprocessing against diffusers: `tests/fixtures/captions.json` holds, for ~100
//! prompts, what `IFPipeline._text_preprocessing` returns with `clean_caption` True and False and
//! what one `_clean_caption` pass returns (tools/reference/make_caption_fixtures.py).

use std::path::PathBuf;

use iterinv_models::text::caption::{clean_caption, named_entities, preprocess, Preprocess};
use serde_json::Value;

fn fixtures() -> Value {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/captions.json"
    ));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

struct Case {
    input: String,
    clean: String,
    clean_once: String,
    plain: String,
}

fn cases() -> Vec<Case> {
    let doc = fixtures();
    let field = |c: &Value, name: &str| c[name].as_str().unwrap().to_owned();
    let cases: Vec<Case> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            input: field(c, "input"),
            clean: field(c, "clean"),
            clean_once: field(c, "clean_once"),
            plain: field(c, "plain"),
        })
        .collect();
    assert!(cases.len() >= 60, "only {} fixture prompts", cases.len());
    cases
}

/// Compares every case, then reports all mismatches at once.
fn check(what: &str, got: impl Fn(&str) -> String, want: impl Fn(&Case) -> &str) {
    let bad: Vec<String> = cases()
        .iter()
        .filter_map(|c| {
            let out = got(&c.input);
            (out != want(c))
                .then(|| format!("{:?}\n   got  {out:?}\n   want {:?}", c.input, want(c)))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn clean_caption_matches_diffusers() {
    check("clean_caption=True", |t| preprocess(t, true), |c| &c.clean);
}

#[test]
fn one_clean_pass_matches_diffusers() {
    check("_clean_caption", clean_caption, |c| &c.clean_once);
}

#[test]
fn lower_strip_matches_diffusers() {
    check(
        "clean_caption=False",
        |t| preprocess(t, false),
        |c| &c.plain,
    );
}

#[test]
fn the_enum_and_the_bool_agree() {
    for c in cases() {
        assert_eq!(
            Preprocess::Clean.apply(&c.input),
            preprocess(&c.input, true)
        );
        assert_eq!(
            Preprocess::LowerStrip.apply(&c.input),
            preprocess(&c.input, false)
        );
    }
}

/// The port's entity table is Python's `html.entities.html5`, key for key.
#[test]
fn entity_table_is_pythons() {
    let doc = fixtures();
    let python: Vec<(&str, &str)> = doc["html5"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    assert_eq!(python.len(), 2231);
    assert_eq!(named_entities(), python);
}

/// Odd input must not panic, and the output is always stripped and holds no whitespace run.
#[test]
fn odd_input_does_not_panic() {
    let long_word = "a".repeat(50_000);
    let long_dots = "a.".repeat(20_000);
    let long_tags = "<b>x</b>".repeat(5_000);
    let long_mixed = "jc6640 http://x.com/ &amp; <i>1920x1080</i> #123 ".repeat(2_000);
    let odd = [
        "%",
        "%%",
        "%z",
        "%zz",
        "%f",
        "%ff%fe%80%c3",
        "%e2%82%ac%e2%82",
        "100%%%",
        "+++",
        "&",
        "&#",
        "&#x",
        "&#99999999999999999999999;",
        "&#xffffffffffffff;",
        "&#55296; &#0; &#x10FFFF; &#xFFFE;",
        "&;&&;&#;",
        "<",
        "<<<>>>",
        "</",
        "<!",
        "<![",
        "<![ x",
        "<![cdata[",
        "<![if x]",
        "<!-",
        "<!--",
        "<!doctype",
        "<?",
        "<a",
        "<a b='",
        "<a b=\"c>",
        "<script>",
        "<script><b>",
        "</script>",
        "<a/",
        "<é>x</é>",
        "...",
        "!!!???,,,;;;:::",
        "#@&*~|/\\()[]{}",
        "-_-_-_-_",
        "\"",
        "''",
        "\u{0}\u{1}\u{1b}[",
        "\u{feff}\u{200b}\u{2028}\u{85}",
        "\u{10ffff}\u{e000}\u{fffd}",
        "ß ﬃ ǅ İ Σ ς",
        "\u{301}\u{301}\u{301}",
        &long_word,
        &long_dots,
        &long_tags,
        &long_mixed,
    ];
    for text in odd {
        for clean in [true, false] {
            let out = preprocess(text, clean);
            assert_eq!(out.trim(), out, "{:?}", &text[..text.len().min(40)]);
            if clean {
                assert!(!out.contains("  "), "{:?}", &text[..text.len().min(40)]);
            }
        }
    }
}
