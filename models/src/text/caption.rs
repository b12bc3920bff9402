//! DeepFloyd-IF's prompt preprocessing, as diffusers' `IFPipeline._text_preprocessing` does it
//! (diffusers 0.42.1, beautifulsoup4 4.15.0, ftfy 6.3.1, CPython 3.11).
//!
//! - [`preprocess`]`(text, true)` = `_clean_caption` twice ([`clean_caption`] is one pass);
//! - [`preprocess`]`(text, false)` = `text.lower().strip()`.
//!
//! Every step of `_clean_caption` is ported in order, with Python's semantics where they differ
//! from Rust's: `\w` = `[\p{L}\p{N}_]`, `\d` = `\p{Nd}`, `\s` and `str.strip()` = Python's
//! whitespace (Unicode White_Space plus U+001C..U+001F), `\b` = a boundary of that `\w` (written
//! as look-arounds), `$` = end or before a final `\n`; `str.lower()` (full case mapping, final
//! sigma); `unquote_plus` (UTF-8 with one U+FFFD per maximal invalid subpart, decoded per run of
//! ASCII characters); BeautifulSoup's html.parser (`caption/html.rs`: its tokenizer quirks and
//! which strings `.text` keeps); ftfy (`caption/ftfy.rs`); `html.unescape` with Python's full
//! `html.entities.html5` table (embedded as `caption/html5_entities.tsv`).
//! `tests/caption.rs` compares with diffusers' outputs for 108 prompts that exercise every step
//! (tools/reference/make_caption_fixtures.py).
//!
//! Known differences from diffusers (none occurs in the fixtures):
//! - Where diffusers raises, this returns a string: `<![` followed by no name or an unknown
//!   keyword (bs4's `ParserRejectedMarkup`; here the `<` stays as text), and numeric character
//!   references of more than 4300 digits (Python's int conversion limit; here U+FFFD).
//! - ftfy: no mojibake repair (`fix_encoding`: "Ã©" stays, ftfy makes it "é"); NFC/NFKC use
//!   Unicode 9 tables (tokenizers' unicode-normalization-alignments).
//! - Unicode versions: character classes and case mapping are Rust's (Unicode 15+), Python 3.11's
//!   are 14.0: a character assigned since (e.g. CJK Extension H) is a letter here, not there.
//! - Backtracking budget: a pattern that exceeds fancy-regex's budget (50M steps; reached only by
//!   long inputs built against the patterns) leaves the rest of the text unreplaced.

mod entities;
mod ftfy;
mod html;

use std::sync::LazyLock;

use fancy_regex::{Regex, RegexBuilder};

pub use entities::table as named_entities;

/// Python's `str.isspace()` set, as a character-class body (`re`'s `\s` on `str` is the same).
const PY_SPACE: &str = r"\t\n\x0B\x0C\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}";
/// Python's `\w` as a class body (letters, numbers of every kind, `_`: checked equal to `re`'s
/// `\w` on all of Unicode 14).
const PY_WORD: &str = r"\p{L}\p{N}_";

fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `str.lower()`.
fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

/// How to preprocess a prompt, as `IFPipeline`'s `clean_caption` argument chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocess {
    /// `clean_caption=True`: [`clean_caption`] twice.
    Clean,
    /// `clean_caption=False`: lower-case and strip.
    LowerStrip,
}

impl Preprocess {
    pub fn apply(self, text: &str) -> String {
        match self {
            Preprocess::Clean => clean_caption(&clean_caption(text)),
            Preprocess::LowerStrip => py_strip(&py_lower(text)).to_owned(),
        }
    }
}

/// `IFPipeline._text_preprocessing(text, clean_caption)` for one prompt.
pub fn preprocess(text: &str, clean_caption: bool) -> String {
    let how = match clean_caption {
        true => Preprocess::Clean,
        false => Preprocess::LowerStrip,
    };
    how.apply(text)
}

/// A replacement: literal text, or group 1 followed by literal text (Python's `r"\1 "`).
#[derive(Clone, Copy)]
enum Rep {
    Lit(&'static str),
    Group1(&'static str),
}

/// `re.sub(pattern, rep, text)`. None of the patterns can match the empty string; an empty match
/// would still advance by one character. If the backtracking budget runs out, the rest is kept.
fn sub(re: &Regex, rep: Rep, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut last, mut pos) = (0, 0);
    while pos <= text.len() {
        let caps = match re.captures_from_pos(text, pos) {
            Ok(Some(caps)) => caps,
            Ok(None) => break,
            Err(e) => {
                log::warn!("caption cleaning: pattern {} gave up: {e}", re.as_str());
                break;
            }
        };
        let Some(m) = caps.get(0) else { break };
        out.push_str(&text[last..m.start()]);
        match rep {
            Rep::Lit(s) => out.push_str(s),
            Rep::Group1(s) => {
                out.push_str(caps.get(1).map_or("", |g| g.as_str()));
                out.push_str(s);
            }
        }
        last = m.end();
        pos = match text[m.end()..].chars().next() {
            _ if m.end() > m.start() => m.end(),
            Some(c) => m.end() + c.len_utf8(),
            None => break,
        };
    }
    out.push_str(&text[last..]);
    out
}

/// The patterns of `_clean_caption`, in its order; each with the Python original above it.
struct Patterns {
    url: [Regex; 2],
    mention: Regex,
    dashes: Regex,
    quot: Regex,
    ip: Regex,
    article_id: Regex,
    hash_short: Regex,
    hash_long: Regex,
    digits: Regex,
    filename: Regex,
    quotes_run: Regex,
    dots_run: Regex,
    bad_punct: Regex,
    lone_dot: Regex,
    ids: [Regex; 3],
    shipping: Regex,
    download: Regex,
    click: Regex,
    image_ext: Regex,
    page: Regex,
    mixed_id: Regex,
    size: Regex,
    colon: Regex,
    punct_space: Regex,
    spaces: Regex,
    enclosing_quotes: Regex,
    lead_punct: Regex,
    trail_punct: Regex,
    dotfile: Regex,
}

static P: LazyLock<Patterns> = LazyLock::new(|| {
    let (w, s) = (PY_WORD, PY_SPACE);
    // Python's \b, for Python's \w.
    let b = &format!("(?:(?<=[{w}])(?![{w}])|(?<![{w}])(?=[{w}]))");
    // Python's $ without MULTILINE.
    let end = r"(?=\n?\z)";
    let re = |p: String| {
        RegexBuilder::new(&p)
            .backtrack_limit(50_000_000)
            .build()
            .unwrap_or_else(|e| panic!("caption pattern {p:?}: {e}"))
    };
    let url = |scheme: &str| {
        re(format!(
            r"{b}((?:{scheme}:(?:/{{1,3}}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[{w}/-]*{b}/?(?!@)))"
        ))
    };
    Patterns {
        // \b((?:https?:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))
        // \b((?:www:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))
        url: [url("https?"), url("www")],
        // @[\w\d]+\b
        mention: re(format!("@[{w}]+{b}")),
        dashes: re(r"[\x{2D}\x{58A}\x{5BE}\x{1400}\x{1806}\x{2010}-\x{2015}\x{2E17}\x{2E1A}\x{2E3A}\x{2E3B}\x{2E40}\x{301C}\x{3030}\x{30A0}\x{FE31}\x{FE32}\x{FE58}\x{FE63}\x{FF0D}]+".into()),
        // &quot;?
        quot: re("&quot;?".into()),
        // \d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}
        ip: re(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}".into()),
        // \d:\d\d\s+$
        article_id: re(format!(r"\d:\d\d[{s}]+{end}")),
        // #\d{1,3}\b   #\d{5,}\b   \b\d{6,}\b
        hash_short: re(format!(r"#\d{{1,3}}{b}")),
        hash_long: re(format!(r"#\d{{5,}}{b}")),
        digits: re(format!(r"{b}\d{{6,}}{b}")),
        // [\S]+\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)
        filename: re(format!(r"[^{s}]+\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)")),
        // [\"\']{2,}   [\.]{2,}
        quotes_run: re(r#"["']{2,}"#.into()),
        dots_run: re(r"\.{2,}".into()),
        // IFPipeline.bad_punct_regex: [#®•©™&@·º½¾¿¡§~\)\(\]\[\}\{\|\\/\*]{1,}
        bad_punct: re(r"[#®•©™&@·º½¾¿¡§~)(\]\[}{|\\/*]+".into()),
        // \s+\.\s+
        lone_dot: re(format!(r"[{s}]+\.[{s}]+")),
        // \b[a-zA-Z]{1,3}\d{3,15}\b   \b[a-zA-Z]+\d+[a-zA-Z]+\b   \b\d+[a-zA-Z]+\d+\b
        ids: [
            re(format!(r"{b}[a-zA-Z]{{1,3}}\d{{3,15}}{b}")),
            re(format!(r"{b}[a-zA-Z]+\d+[a-zA-Z]+{b}")),
            re(format!(r"{b}\d+[a-zA-Z]+\d+{b}")),
        ],
        // (worldwide\s+)?(free\s+)?shipping
        shipping: re(format!(r"(worldwide[{s}]+)?(free[{s}]+)?shipping")),
        // (free\s)?download(\sfree)?
        download: re(format!(r"(free[{s}])?download([{s}]free)?")),
        // \bclick\b\s(?:for|on)\s\w+
        click: re(format!(r"{b}click{b}[{s}](?:for|on)[{s}][{w}]+")),
        // \b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(\simage[s]?)?
        image_ext: re(format!(
            r"{b}(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)([{s}]image[s]?)?"
        )),
        // \bpage\s+\d+\b
        page: re(format!(r"{b}page[{s}]+\d+{b}")),
        // \b\d*[a-zA-Z]+\d+[a-zA-Z]+\d+[a-zA-Z\d]*\b
        mixed_id: re(format!(r"{b}\d*[a-zA-Z]+\d+[a-zA-Z]+\d+[a-zA-Z\d]*{b}")),
        // \b\d+\.?\d*[xх×]\d+\.?\d*\b
        size: re(format!(r"{b}\d+\.?\d*[xх×]\d+\.?\d*{b}")),
        // \b\s+\:\s+
        colon: re(format!(r"{b}[{s}]+:[{s}]+")),
        // (\D[,\./])\b
        punct_space: re(format!(r"(\D[,./]){b}")),
        // \s+
        spaces: re(format!("[{s}]+")),
        // ^[\"\']([\w\W]+)[\"\']$
        enclosing_quotes: re(format!(r#"\A["']((?s:.)+)["']{end}"#)),
        // ^[\'\_,\-\:;]
        lead_punct: re(r"\A['_,\-:;]".into()),
        // [\'\_,\-\:\-\+]$
        trail_punct: re(format!(r"['_,\-:+]{end}")),
        // ^\.\S+$
        dotfile: re(format!(r"\A\.[^{s}]+{end}")),
    }
});

/// One pass of `IFPipeline._clean_caption`.
pub fn clean_caption(caption: &str) -> String {
    use Rep::{Group1, Lit};
    let p = &*P;
    let mut c = unquote_plus(caption);
    c = py_lower(py_strip(&c));
    c = c.replace("<person>", "person");
    for url in &p.url {
        c = sub(url, Lit(""), &c);
    }
    c = html::soup_text(&c);
    c = sub(&p.mention, Lit(""), &c);
    // CJK strokes .. CJK Unified Ideographs: seven adjacent ranges, U+31C0..U+9FFF in all.
    c.retain(|ch| !('\u{31c0}'..='\u{9fff}').contains(&ch));
    c = sub(&p.dashes, Lit("-"), &c);
    c = c
        .chars()
        .map(|ch| match ch {
            '`' | '´' | '«' | '»' | '“' | '”' | '¨' => '"',
            '‘' | '’' => '\'',
            _ => ch,
        })
        .collect();
    c = sub(&p.quot, Lit(""), &c);
    c = c.replace("&amp", "");
    c = sub(&p.ip, Lit(" "), &c);
    c = sub(&p.article_id, Lit(""), &c);
    c = c.replace("\\n", " ");
    c = sub(&p.hash_short, Lit(""), &c);
    c = sub(&p.hash_long, Lit(""), &c);
    c = sub(&p.digits, Lit(""), &c);
    c = sub(&p.filename, Lit(""), &c);
    c = sub(&p.quotes_run, Lit("\""), &c);
    c = sub(&p.dots_run, Lit(" "), &c);
    c = sub(&p.bad_punct, Lit(" "), &c);
    c = sub(&p.lone_dot, Lit(" "), &c);
    // this-is-my-cute-cat / this_is_my_cute_cat
    if c.chars().filter(|&ch| ch == '-' || ch == '_').count() > 3 {
        c = c.replace(['-', '_'], " ");
    }
    c = ftfy::fix_text(&c);
    c = entities::html_unescape(&entities::html_unescape(&c));
    for id in &p.ids {
        c = sub(id, Lit(""), &c);
    }
    c = sub(&p.shipping, Lit(""), &c);
    c = sub(&p.download, Lit(""), &c);
    c = sub(&p.click, Lit(""), &c);
    c = sub(&p.image_ext, Lit(""), &c);
    c = sub(&p.page, Lit(""), &c);
    c = sub(&p.mixed_id, Lit(" "), &c);
    c = sub(&p.size, Lit(""), &c);
    c = sub(&p.colon, Lit(": "), &c);
    c = sub(&p.punct_space, Group1(" "), &c);
    c = sub(&p.spaces, Lit(" "), &c);
    // (diffusers' `caption.strip()` here discards its result.)
    c = sub(&p.enclosing_quotes, Group1(""), &c);
    c = sub(&p.lead_punct, Lit(""), &c);
    c = sub(&p.trail_punct, Lit(""), &c);
    c = sub(&p.dotfile, Lit(""), &c);
    py_strip(&c).to_owned()
}

/// `urllib.parse.unquote_plus(s)`: `+` to space, then `%XX` decoded as UTF-8 with U+FFFD for
/// invalid bytes, separately within each run of ASCII characters (as `unquote` splits it).
fn unquote_plus(s: &str) -> String {
    let s = s.replace('+', " ");
    if !s.contains('%') {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while !rest.is_empty() {
        let ascii = rest.find(|c: char| !c.is_ascii()).unwrap_or(rest.len());
        out.push_str(&percent_decode(&rest[..ascii]));
        let other = rest[ascii..]
            .find(|c: char| c.is_ascii())
            .map_or(rest.len(), |p| ascii + p);
        out.push_str(&rest[ascii..other]);
        rest = &rest[other..];
    }
    out
}

fn percent_decode(ascii: &str) -> String {
    let b = ascii.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |k: usize| b.get(k).and_then(|&h| (h as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                bytes.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (byte, _, _) => {
                bytes.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
