//! `BeautifulSoup(text, features="html.parser").text` (beautifulsoup4 4.15 on CPython 3.11's
//! `html.parser`): a port of `HTMLParser.goahead` and the parse_* methods it calls, with bs4's
//! handlers reduced to what decides the text — which strings exist, and which of them `.text`
//! joins.
//!
//! What is replicated, since it changes the text:
//! - the tokenizer's quirks: `feed` then `close` (two `goahead` passes: an incomplete construct
//!   stops the first pass, and in the second, anything after one that still stops it is kept as
//!   literal text, tags included); tags with attributes (`<b and c>` is a tag); a start tag whose
//!   remainder is not `>` or `/>` kept as text; `<!-- -->`, `<!doctype>`, `<? >`, `</ bogus>`,
//!   `<![cdata[...]]>` (kept: CData is text) and other marked sections; `<script>`/`<style>` raw
//!   content;
//! - references in text as bs4 resolves them: `&#N;`/`&#xN;` (with Windows-1252 for 128–159, U+FFFD
//!   for 0, surrogates and > U+10FFFF), `&name` with or without `;` (unknown names stay `&name`,
//!   their `;` dropped), `&` + letters at the very end (see `incomplete` below);
//! - bs4's tree: strings under `<script>`, `<style>`, `<template>`, `<rt>`, `<rp>` and comments,
//!   doctypes, declarations and processing instructions are left out of `.text`; a string of only
//!   ASCII spaces becomes one `"\n"` or `" "` outside `<pre>`/`<textarea>`; void elements
//!   (`<br>`) close at once and swallow one later `</br>`, which then does not split a string.
//!
//! Not replicated: where html.parser raises (bs4's `ParserRejectedMarkup`, so diffusers fails on
//! the prompt): `<![` followed by no name or by an unknown keyword. Here that `<` is kept as text.

use std::sync::LazyLock;

use fancy_regex::Regex;

use super::entities::{bs4_numeric, by_name, parse_code};
use super::{py_lower, py_strip, PY_SPACE};

/// A constant pattern; a failure to compile is a bug that every caption test shows.
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("caption pattern {pattern:?}: {e}"))
}

struct Patterns {
    locatestarttagend: Regex,
    tagfind: Regex,
    attrfind: Regex,
    endtagfind: Regex,
    commentclose: Regex,
    declname: Regex,
    markedsectionclose: Regex,
    msmarkedsectionclose: Regex,
}

/// html.parser's patterns, `\s` spelled as Python's (Unicode) whitespace, `\G` anchoring them
/// where Python calls `.match(rawdata, pos)`.
static P: LazyLock<Patterns> = LazyLock::new(|| {
    let s = format!("[{PY_SPACE}]");
    let lookbehind = format!(r#"(?<=['"{PY_SPACE}/])"#);
    let value = format!(r#"(?:'[^']*'|"[^"]*"|(?!['"])[^>{PY_SPACE}]*)"#);
    let attr_name = format!("[^{PY_SPACE}/>][^{PY_SPACE}/=>]*");
    let sep = format!("(?:{s}|/(?!>))*");
    Patterns {
        locatestarttagend: re(&format!(
            r"\G<[a-zA-Z][^\t\n\r\x0C />\x00]*(?:[{PY_SPACE}/]*(?:{lookbehind}{attr_name}(?:{s}*=+{s}*{value}{s}*)?{sep})*)?{s}*"
        )),
        tagfind: re(&format!(r"\G([a-zA-Z][^\t\n\r\x0C />\x00]*){sep}")),
        attrfind: re(&format!(
            r"\G{lookbehind}{attr_name}(?:{s}*=+{s}*{value})?{sep}"
        )),
        endtagfind: re(&format!(r"\G</{s}*([a-zA-Z][-.a-zA-Z0-9:_]*){s}*>")),
        commentclose: re(&format!("--{s}*>")),
        declname: re(&format!(r"\G[a-zA-Z][-_.a-zA-Z0-9]*{s}*")),
        markedsectionclose: re(&format!("]{s}*]{s}*>")),
        msmarkedsectionclose: re(&format!("]{s}*>")),
    }
});

/// The end of `pattern` matched at `pos` (`None` also where the backtracking limit is hit, which
/// the short, simple tag patterns do not reach on real input).
fn match_end(pattern: &Regex, raw: &str, pos: usize) -> Option<usize> {
    pattern
        .find_from_pos(raw, pos)
        .ok()
        .flatten()
        .map(|m| m.end())
}

fn search(pattern: &Regex, raw: &str, pos: usize) -> Option<(usize, usize)> {
    pattern
        .find_from_pos(raw, pos)
        .ok()
        .flatten()
        .map(|m| (m.start(), m.end()))
}

const VOID: [&str; 24] = [
    "area", "base", "basefont", "bgsound", "br", "col", "command", "embed", "frame", "hr", "image",
    "img", "input", "isindex", "keygen", "link", "menuitem", "meta", "nextid", "param", "source",
    "spacer", "track", "wbr",
];
/// bs4's `string_containers`: their strings are not NavigableStrings, so `.text` skips them.
const CONTAINERS: [&str; 5] = ["rt", "rp", "style", "script", "template"];
const PRESERVE: [&str; 2] = ["pre", "textarea"];

/// What bs4 does with a finished string.
#[derive(PartialEq)]
enum Kind {
    /// A NavigableString, or a container's string class when inside one.
    Text,
    CData,
    /// Comment, Doctype, Declaration, ProcessingInstruction.
    Hidden,
}

#[derive(Default)]
struct Soup {
    out: String,
    /// `current_data`: `None` for bs4's empty list (an empty string in it still counts).
    data: Option<String>,
    open: Vec<String>,
    already_closed: Vec<String>,
}

impl Soup {
    fn data(&mut self, text: &str) {
        self.data.get_or_insert_with(String::new).push_str(text);
    }

    /// `BeautifulSoup.endData`.
    fn end_data(&mut self, kind: Kind) {
        let Some(mut data) = self.data.take() else {
            return;
        };
        let preserve = self.open.iter().any(|t| PRESERVE.contains(&t.as_str()));
        if !preserve && data.chars().all(|c| " \n\t\x0c\r".contains(c)) {
            data = if data.contains('\n') { "\n" } else { " " }.into();
        }
        let contained = self.open.iter().any(|t| CONTAINERS.contains(&t.as_str()));
        if kind == Kind::CData || (kind == Kind::Text && !contained) {
            self.out.push_str(&data);
        }
    }

    /// `BeautifulSoup.handle_endtag`: pops up to and including the latest open `name`, if any.
    fn soup_endtag(&mut self, name: &str) {
        self.end_data(Kind::Text);
        if let Some(at) = self.open.iter().rposition(|t| t == name) {
            self.open.truncate(at);
        }
    }

    /// `BeautifulSoupHTMLParser.handle_starttag`.
    fn starttag(&mut self, name: &str, close_void: bool) {
        self.end_data(Kind::Text);
        self.open.push(name.to_owned());
        if close_void && VOID.contains(&name) {
            self.soup_endtag(name);
            self.already_closed.push(name.to_owned());
        }
    }

    /// `BeautifulSoupHTMLParser.handle_endtag`.
    fn endtag(&mut self, name: &str, check_already_closed: bool) {
        match self.already_closed.iter().position(|t| t == name) {
            Some(at) if check_already_closed => {
                self.already_closed.remove(at);
            }
            _ => self.soup_endtag(name),
        }
    }

    fn hidden(&mut self, text: &str) {
        self.end_data(Kind::Text);
        self.data(text);
        self.end_data(Kind::Hidden);
    }
}

#[derive(Default)]
struct Parser {
    soup: Soup,
    cdata_elem: Option<String>,
}

/// `BeautifulSoup(markup, "html.parser").text`.
pub(super) fn soup_text(markup: &str) -> String {
    let mut parser = Parser::default();
    let done = parser.goahead(markup, false);
    parser.goahead(&markup[done..], true);
    parser.soup.end_data(Kind::Text);
    parser.soup.out
}

/// Byte offset of the next `c` at or after `from`.
fn find(raw: &str, c: char, from: usize) -> Option<usize> {
    raw.get(from..)?.find(c).map(|p| from + p)
}

impl Parser {
    /// `HTMLParser.goahead` (with `convert_charrefs=False`, as bs4 sets it); returns how much of
    /// `raw` it consumed.
    fn goahead(&mut self, raw: &str, end: bool) -> usize {
        let n = raw.len();
        let mut i = 0;
        while i < n {
            let j = match self.interesting(raw, i) {
                Some(j) => j,
                None if self.cdata_elem.is_some() => break,
                None => n,
            };
            if i < j {
                self.soup.data(&raw[i..j]);
            }
            i = j;
            if i == n {
                break;
            }
            let rest = &raw[i..];
            if rest.starts_with('<') {
                let k = if rest.len() > 1 && rest.as_bytes()[1].is_ascii_alphabetic() {
                    self.parse_starttag(raw, i)
                } else if rest.starts_with("</") {
                    self.parse_endtag(raw, i)
                } else if rest.starts_with("<!--") {
                    self.parse_comment(raw, i)
                } else if rest.starts_with("<?") {
                    find(raw, '>', i + 2).map(|j| {
                        self.soup.hidden(&raw[i + 2..j]);
                        j + 1
                    })
                } else if rest.starts_with("<!") {
                    self.parse_html_declaration(raw, i)
                } else if i + 1 < n {
                    self.soup.data("<");
                    Some(i + 1)
                } else {
                    break;
                };
                i = match k {
                    Some(k) => k,
                    None if !end => break,
                    None => {
                        let k = match (find(raw, '>', i + 1), find(raw, '<', i + 1)) {
                            (Some(gt), _) => gt + 1,
                            (None, Some(lt)) => lt,
                            (None, None) => i + 1,
                        };
                        self.soup.data(&raw[i..k]);
                        k
                    }
                };
            } else if let Some(num) = rest.strip_prefix("&#") {
                // charref: `&#(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F]`
                let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => (hex, 16, 3),
                    None => (num, 10, 2),
                };
                let len = digits
                    .find(|c: char| !c.is_digit(radix))
                    .unwrap_or(digits.len());
                let after = digits[len..].chars().next();
                match after {
                    Some(c) if len > 0 && !c.is_ascii_hexdigit() => {
                        let code = parse_code(&digits[..len], radix);
                        self.soup.data(bs4_numeric(code).encode_utf8(&mut [0; 4]));
                        i += skip + len + usize::from(c == ';');
                    }
                    _ => {
                        if rest.contains(';') {
                            self.soup.data("&#");
                            i += 2;
                        }
                        break;
                    }
                }
            } else {
                // entityref: `&([a-zA-Z][-.a-zA-Z0-9]*)[^a-zA-Z0-9]`
                let body = &rest[1..];
                let run = body
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                    .unwrap_or(body.len());
                // At the end of the buffer the regex backtracks to a '-' or '.' as terminator.
                let name_len = match body.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    false => None,
                    true if run < body.len() => Some(run),
                    true => body[1..run].rfind(['-', '.']).map(|p| p + 1),
                };
                if let Some(len) = name_len {
                    let name = &body[..len];
                    match by_name(name) {
                        Some(text) => self.soup.data(text),
                        None => self.soup.data(&format!("&{name}")),
                    }
                    i += 1 + len + usize::from(body[len..].starts_with(';'));
                } else if body.starts_with(|c: char| c.is_ascii_alphabetic() || c == '#') {
                    // `incomplete`: at the very end, "&x" alone loses its "&".
                    if end && body.len() == 1 {
                        i += 1;
                    }
                    break;
                } else if i + 1 < n {
                    self.soup.data("&");
                    i += 1;
                } else {
                    break;
                }
            }
        }
        if end && i < n && self.cdata_elem.is_none() {
            self.soup.data(&raw[i..]);
            i = n;
        }
        i
    }

    /// The next `<` or `&`; inside `<script>`/`<style>`, the next `</\s*script\s*>` (re.I).
    fn interesting(&self, raw: &str, from: usize) -> Option<usize> {
        let Some(elem) = &self.cdata_elem else {
            return raw[from..].find(['<', '&']).map(|p| from + p);
        };
        let mut at = from;
        while let Some(lt) = find(raw, '<', at) {
            let after = raw[lt + 1..]
                .strip_prefix('/')
                .map(|t| t.trim_start_matches(is_space));
            if let Some(t) = after {
                let name_ok = t.len() >= elem.len()
                    && t.as_bytes()[..elem.len()].eq_ignore_ascii_case(elem.as_bytes());
                if name_ok
                    && t[elem.len()..]
                        .trim_start_matches(is_space)
                        .starts_with('>')
                {
                    return Some(lt);
                }
            }
            at = lt + 1;
        }
        None
    }

    fn parse_starttag(&mut self, raw: &str, i: usize) -> Option<usize> {
        let endpos = check_for_whole_start_tag(raw, i)?;
        let m = P.tagfind.captures_from_pos(raw, i + 1).ok().flatten()?;
        let tag = py_lower(m.get(1)?.as_str());
        let mut k = m.get(0)?.end();
        while k < endpos {
            match match_end(&P.attrfind, raw, k) {
                Some(e) => k = e,
                None => break,
            }
        }
        let tail = py_strip(raw.get(k..endpos).unwrap_or(""));
        if tail != ">" && tail != "/>" {
            self.soup.data(&raw[i..endpos]);
        } else if tail == "/>" {
            self.soup.starttag(&tag, false);
            self.soup.endtag(&tag, false);
        } else {
            self.soup.starttag(&tag, true);
            if tag == "script" || tag == "style" {
                self.cdata_elem = Some(tag);
            }
        }
        Some(endpos)
    }

    fn parse_endtag(&mut self, raw: &str, i: usize) -> Option<usize> {
        let gtpos = find(raw, '>', i + 1)? + 1;
        let Some(m) = P.endtagfind.captures_from_pos(raw, i).ok().flatten() else {
            if self.cdata_elem.is_some() {
                self.soup.data(&raw[i..gtpos]);
                return Some(gtpos);
            }
            let Some(name) = P.tagfind.captures_from_pos(raw, i + 2).ok().flatten() else {
                if raw[i..].starts_with("</>") {
                    return Some(i + 3);
                }
                return self.parse_bogus_comment(raw, i);
            };
            let tag = py_lower(name.get(1)?.as_str());
            let gt = find(raw, '>', name.get(0)?.end())?;
            self.soup.endtag(&tag, true);
            return Some(gt + 1);
        };
        let elem = py_lower(m.get(1)?.as_str());
        if let Some(cdata) = &self.cdata_elem {
            if *cdata != elem {
                self.soup.data(&raw[i..gtpos]);
                return Some(gtpos);
            }
        }
        self.soup.endtag(&elem, true);
        self.cdata_elem = None;
        Some(gtpos)
    }

    fn parse_comment(&mut self, raw: &str, i: usize) -> Option<usize> {
        let (start, end) = search(&P.commentclose, raw, i + 4)?;
        self.soup.hidden(&raw[i + 4..start]);
        Some(end)
    }

    fn parse_bogus_comment(&mut self, raw: &str, i: usize) -> Option<usize> {
        let pos = find(raw, '>', i + 2)?;
        self.soup.hidden(&raw[i + 2..pos]);
        Some(pos + 1)
    }

    fn parse_html_declaration(&mut self, raw: &str, i: usize) -> Option<usize> {
        let rest = &raw.as_bytes()[i..];
        if rest.starts_with(b"<![") {
            self.parse_marked_section(raw, i)
        } else if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"<!doctype") {
            let gt = find(raw, '>', i + 9)?;
            self.soup.hidden(&raw[i + 2..gt]);
            Some(gt + 1)
        } else {
            self.parse_bogus_comment(raw, i)
        }
    }

    /// `_markupbase.ParserBase.parse_marked_section` (`<![cdata[...]]>`, `<![if ...]>`).
    fn parse_marked_section(&mut self, raw: &str, i: usize) -> Option<usize> {
        let j = i + 3;
        let Some(name_end) = match_end(&P.declname, raw, j) else {
            // html.parser raises here (bs4: ParserRejectedMarkup), unless at the very end.
            if j == raw.len() {
                return None;
            }
            self.soup.data("<");
            return Some(i + 1);
        };
        if name_end == raw.len() {
            return None;
        }
        let name = py_lower(py_strip(&raw[j..name_end]));
        let close = match name.as_str() {
            "temp" | "cdata" | "ignore" | "include" | "rcdata" => &P.markedsectionclose,
            "if" | "else" | "endif" => &P.msmarkedsectionclose,
            _ => {
                self.soup.data("<");
                return Some(i + 1);
            }
        };
        let (start, end) = search(close, raw, j)?;
        let data = &raw[j..start];
        self.soup.end_data(Kind::Text);
        if data.len() >= 6 && data.as_bytes()[..6].eq_ignore_ascii_case(b"cdata[") {
            self.soup.data(&data[6..]);
            self.soup.end_data(Kind::CData);
        } else {
            self.soup.data(data);
            self.soup.end_data(Kind::Hidden);
        }
        Some(end)
    }
}

fn is_space(c: char) -> bool {
    super::is_py_space(c)
}

/// `HTMLParser.check_for_whole_start_tag`: the end of the tag, `None` if incomplete.
fn check_for_whole_start_tag(raw: &str, i: usize) -> Option<usize> {
    let j = match_end(&P.locatestarttagend, raw, i)?;
    let next = raw[j..].chars().next()?;
    match next {
        '>' => Some(j + 1),
        '/' if raw[j..].starts_with("/>") => Some(j + 2),
        '/' => None,
        c if c.is_ascii_alphabetic() || c == '=' => None,
        _ if j > i => Some(j),
        _ => Some(i + 1),
    }
}
