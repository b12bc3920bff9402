//! `ftfy.fix_text(text)` (ftfy 6.3.1, default configuration) without mojibake repair.
//!
//! Ported: the per-line segmentation (and `unescape_html="auto"` switching off for the rest of
//! the text at the first line holding `<`), the fix-until-stable loop, and each fixer in ftfy's
//! order: `unescape_html`, `fix_c1_controls` (C1 controls as Windows-1252), `fix_latin_ligatures`,
//! `fix_character_width` (U+FF01..U+FFEF by NFKC, U+3000 to a space), `uncurl_quotes`,
//! `fix_line_breaks`, `remove_terminal_escapes`, `remove_control_chars`, then NFC.
//!
//! Not ported: `fix_encoding` (mojibake detection and re-decoding, with `restore_byte_a0`,
//! `replace_lossy_sequences`, `decode_inconsistent_utf8`): text that ftfy's badness heuristic
//! flags (e.g. "Ã©" for "é", "â€™" for "’") is left as is here. `fix_surrogates` has nothing to
//! do on Rust strings. NFC/NFKC come from tokenizers' unicode-normalization tables (Unicode 9;
//! Python 3.11 has 14): the two differ only on characters added since Unicode 9.

use std::collections::HashMap;
use std::sync::LazyLock;

use fancy_regex::Regex;
use tokenizers::NormalizedString;

use super::entities::{cp1252_c1, ftfy_unescape};

/// `TextFixerConfig.max_decode_length`, in characters.
const MAX_SEGMENT: usize = 1_000_000;

pub(super) fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    let mut pos = 0;
    while pos < text.len() {
        let mut brk = text[pos..].find('\n').map_or(text.len(), |p| pos + p + 1);
        if let Some((cut, _)) = text[pos..brk].char_indices().nth(MAX_SEGMENT) {
            brk = pos + cut;
        }
        let segment = &text[pos..brk];
        unescape &= !segment.contains('<');
        out.push_str(&fix_segment(segment, unescape));
        pos = brk;
    }
    out
}

/// `fix_and_explain`: the fixers, repeated until nothing changes.
fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_owned();
    loop {
        let before = text.clone();
        if unescape {
            text = ftfy_unescape(&text);
        }
        text = text.chars().map(c1_control).collect();
        text = translate(&text);
        text = text
            .replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
        text = remove_terminal_escapes(&text);
        text.retain(|c| !is_control(c));
        text = NormalizedString::from(text.as_str()).nfc().get().to_owned();
        if text == before {
            return text;
        }
    }
}

fn c1_control(c: char) -> char {
    cp1252_c1(c as u32).unwrap_or(c)
}

/// Ligatures and character width (one pass: neither produces the other's input), then quotes
/// (a second pass: the ligature 'ŉ' becomes "ʼn", whose U+02BC is then uncurled).
fn translate(text: &str) -> String {
    let mut wide = String::with_capacity(text.len());
    for c in text.chars() {
        match (ligature(c), WIDTH.get(&c)) {
            (Some(s), _) => wide.push_str(s),
            (None, Some(s)) => wide.push_str(s),
            (None, None) => wide.push(c),
        }
    }
    wide.chars()
        .map(|c| match c {
            '\u{201c}'..='\u{201f}' => '"',
            '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
            _ => c,
        })
        .collect()
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// ftfy's `WIDTH_MAP`: halfwidth and fullwidth forms to their NFKC form.
static WIDTH: LazyLock<HashMap<char, String>> = LazyLock::new(|| {
    let mut map: HashMap<char, String> = (0xff01..0xfff0)
        .filter_map(char::from_u32)
        .filter_map(|c| {
            let s = c.to_string();
            let nfkc = NormalizedString::from(s.as_str()).nfkc().get().to_owned();
            (nfkc != s).then_some((c, nfkc))
        })
        .collect();
    map.insert('\u{3000}', " ".into());
    map
});

/// ftfy's `ANSI_RE`: `\033\[((?:\d|;)*)([a-zA-Z])`.
static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1B\[(?:\d|;)*[a-zA-Z]").unwrap_or_else(|e| panic!("ANSI pattern: {e}"))
});

fn remove_terminal_escapes(text: &str) -> String {
    if !text.contains('\x1b') {
        return text.to_owned();
    }
    super::sub(&ANSI, super::Rep::Lit(""), text)
}

/// ftfy's `CONTROL_CHARS`.
fn is_control(c: char) -> bool {
    matches!(c,
        '\0'..='\x08' | '\x0b' | '\x0e'..='\x1f' | '\x7f' | '\u{206a}'..='\u{206f}' | '\u{feff}'
        | '\u{fff9}'..='\u{fffc}')
}
