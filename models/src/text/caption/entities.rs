//! HTML character references: the named-entity table and the three decoders that use it
//! (BeautifulSoup's html.parser handlers, Python's `html.unescape`, ftfy's `unescape_html`).

use std::collections::HashMap;
use std::sync::LazyLock;

/// Python's `html.entities.html5` (the WHATWG list: 2231 keys, `name;` and the 106 legacy names
/// also valid without `;`), one `key<TAB>code points in hex` per line, written by
/// tools/reference/make_caption_fixtures.py; `tests/caption.rs` checks it equals Python's.
static HTML5_TSV: &str = include_str!("html5_entities.tsv");

static HTML5: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
    HTML5_TSV
        .lines()
        .filter_map(|line| {
            let (key, codes) = line.split_once('\t')?;
            let text = codes
                .split(' ')
                .map(|hex| u32::from_str_radix(hex, 16).ok().and_then(char::from_u32))
                .collect::<Option<String>>()?;
            Some((key, text))
        })
        .collect()
});

/// The table as parsed, for the test that compares it with Python's.
pub fn table() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = HTML5.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.sort_unstable();
    all
}

/// A key of `html.entities.html5`: `name;`, or a bare legacy `name`.
fn html5(key: &str) -> Option<&'static str> {
    HTML5.get(key).map(String::as_str)
}

/// An entity name as BeautifulSoup knows it (`html5` keys with the `;` dropped).
pub(super) fn by_name(name: &str) -> Option<&'static str> {
    html5(&format!("{name};")).or_else(|| html5(name))
}

/// Windows-1252 for 0x80..=0x9F, the five undefined bytes standing for themselves: the table of
/// `html._invalid_charrefs`, of bs4's `WINDOWS_1252_TO_UTF8` and of ftfy's "sloppy-windows-1252".
pub(super) fn cp1252_c1(code: u32) -> Option<char> {
    const HIGH: [char; 32] = [
        '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{2c6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}',
        '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}',
        '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}', '\u{153}', '\u{9d}', '\u{17e}',
        '\u{178}',
    ];
    (0x80..=0x9f)
        .contains(&code)
        .then(|| HIGH[(code - 0x80) as usize])
}

/// Parses ASCII digits of `radix`, saturating: numbers past U+10FFFF all decode alike.
pub(super) fn parse_code(digits: &str, radix: u32) -> u32 {
    digits.chars().fold(0u32, |acc, c| {
        let d = c.to_digit(radix).unwrap_or(0);
        acc.saturating_mul(radix).saturating_add(d).min(0x11_0000)
    })
}

/// `UnicodeDammit.numeric_character_reference`: what BeautifulSoup makes of `&#N;`.
pub(super) fn bs4_numeric(code: u32) -> char {
    if code == 0 || (0xd800..=0xdfff).contains(&code) {
        return '\u{fffd}';
    }
    if let Some(c) = cp1252_c1(code).filter(|&c| c as u32 != code) {
        return c;
    }
    char::from_u32(code).unwrap_or('\u{fffd}')
}

/// `html._replace_charref` for a numeric reference.
fn python_numeric(code: u32) -> String {
    match code {
        0 => "\u{fffd}".into(),
        0x0d => "\r".into(),
        0x80..=0x9f => cp1252_c1(code).map(String::from).unwrap_or_default(),
        0xd800..=0xdfff | 0x11_0000.. => "\u{fffd}".into(),
        0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f | 0xfdd0..=0xfdef => String::new(),
        _ if code & 0xfffe == 0xfffe => String::new(),
        _ => char::from_u32(code).map(String::from).unwrap_or_default(),
    }
}

/// One reference at `s[amp..]` (which starts with `&`) as `html.unescape`'s `_charref` pattern
/// matches it: `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`. Returns its end and text.
fn python_charref(s: &str, amp: usize) -> Option<(usize, String)> {
    let rest = &s[amp + 1..];
    let semi = |end: usize| end + usize::from(rest[end..].starts_with(';'));
    if let Some(num) = rest.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits
            .find(|c: char| !c.is_digit(radix))
            .unwrap_or(digits.len());
        if len == 0 {
            return None;
        }
        let end = semi(skip + len);
        return Some((
            amp + 1 + end,
            python_numeric(parse_code(&digits[..len], radix)),
        ));
    }
    let len: usize = rest
        .chars()
        .take_while(|c| !"\t\n\x0c <&#;".contains(*c))
        .take(32)
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let end = semi(len);
    let name = &rest[..end];
    if let Some(text) = html5(name) {
        return Some((amp + 1 + end, text.to_owned()));
    }
    // The longest prefix (of at least two characters) that is a legacy name, followed by the rest.
    let cuts: Vec<usize> = name.char_indices().map(|(i, _)| i).skip(2).collect();
    for &cut in cuts.iter().rev() {
        if let Some(text) = html5(&name[..cut]) {
            return Some((amp + 1 + end, format!("{text}{}", &name[cut..])));
        }
    }
    None
}

/// Python's `html.unescape`.
pub(super) fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut last, mut from) = (0, 0);
    while let Some(off) = s[from..].find('&') {
        let amp = from + off;
        match python_charref(s, amp) {
            Some((end, text)) => {
                out.push_str(&s[last..amp]);
                out.push_str(&text);
                (last, from) = (end, end);
            }
            None => from = amp + 1,
        }
    }
    out.push_str(&s[last..]);
    out
}

/// ftfy's `unescape_html`: each `&#?[0-9A-Za-z]{1,24};` that is a known entity (or, upper-cased,
/// one whose lower-case form is) or a numeric reference that decodes to no `;`.
pub(super) fn ftfy_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut last, mut from) = (0, 0);
    while let Some(off) = s[from..].find('&') {
        let amp = from + off;
        let body = &s[amp + 1..];
        let hash = usize::from(body.starts_with('#'));
        let len = body[hash..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(body.len() - hash);
        if !(1..=24).contains(&len) || !body[hash + len..].starts_with(';') {
            from = amp + 1;
            continue;
        }
        let end = amp + 1 + hash + len + 1;
        let entity = &s[amp..end];
        out.push_str(&s[last..amp]);
        out.push_str(&ftfy_entity(entity, &body[hash..hash + len], hash == 1));
        (last, from) = (end, end);
    }
    out.push_str(&s[last..]);
    out
}

fn ftfy_entity(entity: &str, name: &str, numeric: bool) -> String {
    if numeric {
        let text = html_unescape(entity);
        return if text.contains(';') {
            entity.into()
        } else {
            text
        };
    }
    if let Some(text) = html5(&format!("{name};")) {
        return text.into();
    }
    // ftfy also decodes an all-capitals spelling of a lower-case name (`&EACUTE;` -> `É`) unless
    // Python's `html.unescape` already gives that spelling a meaning.
    let lower = name.to_ascii_lowercase();
    match html5(&format!("{lower};")) {
        Some(text) if lower.to_ascii_uppercase() == name && html_unescape(entity) == entity => {
            text.to_uppercase()
        }
        _ => entity.into(),
    }
}
