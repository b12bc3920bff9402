#!/usr/bin/env python3
"""Golden fixtures for DeepFloyd-IF's prompt preprocessing (diffusers' IFPipeline).

For ~100 prompts that exercise every step of `IFPipeline._clean_caption` (percent-decoding, URLs,
HTML through BeautifulSoup's html.parser, @mentions, CJK, dashes, quotes, entities, IPs, ids, file
names, punctuation runs, hyphen/underscore runs, ftfy, html.unescape, the final regexes), writes
tests/fixtures/captions.json holding, per prompt:

  - `input`;
  - `clean`: `IFPipeline._text_preprocessing(text, clean_caption=True)` (`_clean_caption` twice);
  - `clean_once`: one `_clean_caption` pass (to localise a failure);
  - `plain`: `_text_preprocessing(text, clean_caption=False)` (`text.lower().strip()`).

It calls diffusers' own methods on `IFPipeline.__new__(IFPipeline)` (nothing is loaded: the methods
only use the class attribute `bad_punct_regex`).

The Rust port (models/src/text/caption.rs) does not repair mojibake (ftfy's `fix_encoding` and its
sub-steps). So that no expected output relies on it, every string diffusers hands to
`ftfy.fix_text` is also fixed with `fix_encoding=False`, and the script stops if the two differ.

Also written: `html5`, Python's `html.entities.html5` table (name -> text), and the versions of
everything involved. The same table goes, one `key<TAB>hex code points` a line, to
models/src/text/caption/html5_entities.tsv, which the Rust port embeds (the test checks the two
agree).

Run from the repository root (no network, no GPU, < 1 s):
    /work/venv/ref/bin/python tools/reference/make_caption_fixtures.py
(needs diffusers, beautifulsoup4, ftfy: see requirements.txt)
"""
import argparse
import html.entities
import json
import os
import sys
import unicodedata

import bs4
import ftfy
import diffusers
from diffusers import IFPipeline
from diffusers.pipelines.deepfloyd_if import pipeline_if

PROMPTS = [
    # plain text, case, whitespace
    "A photo of a cat",
    "  Leading and trailing spaces  ",
    "",
    "   ",
    "\t\n \u3000 \u2003 ",
    "Line one\nLine two\r\nLine three",
    "literal \\n backslash-n in text",
    "UPPER CASE Prompt With MiXeD case",
    "tabs\tand\ttabs",
    "text with\u00a0nbsp and\u2003em space",
    "sep\x1cchars\x1fare python whitespace",
    # URLs, e-mails, mentions
    "Visit https://www.example.com/path/to/page?x=1 for more",
    "see http://foo.org and www.bar.net/baz today",
    "check example.com/cats-and-dogs now",
    "shop at amazon.co.uk/dp/b00x4whp5e today",
    "https:example and http:/x and www:foo",
    "www.example.org",
    "email me at john.doe@gmail.com please",
    "user@domain.com",
    "follow @cool_artist and @another99 on social",
    # HTML through BeautifulSoup
    "<b>bold</b> and <i>italic</i> text",
    '<a href="http://x.com">link text</a> after',
    "<p>para one</p><p>para two</p>",
    "<script>alert(1)</script>visible<style>p{}</style> text",
    "<!-- comment -->after comment <!doctype html> ok",
    "a <b and c> d",
    "x < y and 3 > 2",
    "<br/>self closing<br />tags<img src=x>end",
    "<![cdata[inside cdata]]> outside",
    "bold <b>unclosed tag",
    "trailing <unclosed",
    "<pre>  keep  </pre> and <p>  </p> done",
    "<template><b>hidden</b></template>shown <ruby>k<rt>reading</rt></ruby>",
    "a<br>b</br>c",
    "<?php echo 1 ?>after pi",
    "</>empty end tag </1> bogus",
    # entities and charrefs
    "Tom &amp; Jerry &quot;cartoon&quot; &lt;3 &gt; &nbsp;fun",
    "&copy; 2023 &eacute;t&eacute; &hellip; &mdash; done",
    "Numeric &#65;&#x42;&#147;quoted&#148; refs",
    "say &amp;quot;hi&amp;quot; &amp;amp; bye",
    "tom &jerry and bare & ampersand",
    "x &a",
    "&#z; a &#q; <b>x</b>",
    "unknown &foo; entity &bar",
    "&ampere and &notit; prefixes",
    "\uff21\uff22\uff23\uff06\uff4c\uff54\uff1bx fullwidth entity",
    "Q&A session",
    "sun&star and &check; &dash &frac12; cup &sup2;",
    "x &lt.5 and &amp-",
    "\uff06&#69;&#65;&#67;&#85;&#84;&#69;\uff1b capital entity via ftfy",
    "<![if ie]>conditional<![endif]> text",
    # percent-encoding and '+'
    "percent%20encoded%2C+plus+signs",
    "caf%C3%A9 and na%c3%afve",
    "broken %e2%82 utf8 %zz and 100% sure %",
    "surrogate %ed%a0%80 and overlong %c0%af and %f0%80%80 end",
    "trailing plus%2B",
    # CJK, dashes, quotes
    "CJK: \u65e5\u672c\u8a9e\u306e\u6587\u5b57 and \u4e2d\u6587 mixed \ud55c\uad6d\uc5b4",
    "strokes \u31c0\u31ef and \u3280 enclosed \u33ff compat \u4dc0 hexagram",
    "dashes \u2013 \u2014 \u2015 \u2010 - \ufe63 \uff0d \u301c \u058a end",
    "\u201ccurly\u201d \u2018quotes\u2019 \u00abguillemets\u00bb `backtick\u00b4 \u00a8",
    "rock'n'roll isn't dead",
    '"quoted whole prompt"',
    "'single quoted'",
    '  "  spaced quotes  "  ',
    'quote """AUSVERKAUFT""" done',
    # numbers, ids, file names
    "server at 192.168.0.1 and 10.0.0.255",
    "article 12:34 <br>",
    "item #123 and #45678 and #1234 and order 1234567",
    "hash #tag and #1 and #99",
    "12345678901234567890 long digits",
    "area 5\u00b2123456 m and \u00bd1234567",
    "download image.png and photo.JPG and doc.pdf here",
    "mp4 video and webp images and jpg image",
    "model jc6640 and jc6640vc and 6640vc231",
    "j2d1a2a and a1b2c3 patterns",
    "wallpaper 1920x1080 and 3.5x2 and 4\u04455 and 7\u00d78",
    "size: 10 x 20",
    "see page 12 of the book",
    "1,2,3 a,b.c/d",
    # punctuation
    "wait... what.... ok..",
    "***AUSVERKAUFT*** #AUSVERKAUFT (sale) [new] {x} | a/b \\ c ~ \u00ae \u00a9 \u2122 \u00a7 \u00a1 \u00bf",
    "50% off!!! buy now...",
    "a . b . c",
    "Title : subtitle",
    ",leading comma",
    ";leading semicolon",
    "trailing comma,",
    ".hidden",
    # hyphens / underscores
    "this-is-my-cute-cat",
    "this_is_my_cute_cat",
    "a-b-c only three",
    "a__b__c double underscores",
    # shipping, download, click
    "free shipping worldwide free shipping and worldwide   free shipping",
    "free download now, download free",
    "click for more, click on this, click here",
    # unicode letters, ftfy
    "Cr\u00e8me br\u00fbl\u00e9e \u00e0 la fran\u00e7aise",
    "\u00dcn\u00efc\u00f6d\u00e9 \u00c0\u00c9\u00ce\u00d5\u00dc \u00c5NGSTR\u00d6M",
    "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 greek final sigma \u039f\u0394\u039f\u03a3",
    "\u0130stanbul D\u0130J\u0130TAL",
    "decomposed cafe\u0301 accent and e\u0301123456",
    "\ufb01ne \ufb02ower ligatures and \uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 text",
    "ANSI \x1b[31mred\x1b[0m text",
    "zero\u200bwidth and bom\ufeff and soft\u00adhyphen",
    "a\x00b\x07c controls",
    "emoji \U0001f431 cat \U0001f600",
    "roman \u216b and circled \u2460 and \u24b6",
    "C1 \x96 dash and \x85 next line",
    # a realistic prompt
    "Photo of a Corgi wearing sunglasses—ultra-detailed, 4K, 1920x1080, "
    "trending on artstation.com &amp; <b>FREE SHIPPING</b> IMG_2041.JPG",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/fixtures/captions.json")
    ap.add_argument("--entities", default="models/src/text/caption/html5_entities.tsv")
    args = ap.parse_args()

    # Check, for every string diffusers hands to ftfy, that mojibake repair does not change it.
    real_fix_text = ftfy.fix_text
    relied = []

    def checked_fix_text(text, *a, **kw):
        fixed = real_fix_text(text, *a, **kw)
        if fixed != real_fix_text(text, fix_encoding=False):
            relied.append(text)
        return fixed

    pipeline_if.ftfy = type(sys)("ftfy_checked")
    pipeline_if.ftfy.fix_text = checked_fix_text

    pipe = IFPipeline.__new__(IFPipeline)  # no components: the methods only use bad_punct_regex
    cases = []
    for text in PROMPTS:
        relied.clear()
        clean = pipe._text_preprocessing(text, clean_caption=True)
        if relied:
            sys.exit(f"prompt {text!r} relies on ftfy's mojibake repair ({relied!r}); drop it")
        cases.append(
            {
                "input": text,
                "clean": clean[0],
                "clean_once": pipe._clean_caption(text),
                "plain": pipe._text_preprocessing(text, clean_caption=False)[0],
            }
        )

    doc = {
        "about": "IFPipeline._text_preprocessing outputs; see tools/reference/make_caption_fixtures.py",
        "versions": {
            "python": sys.version.split()[0],
            "unicodedata": unicodedata.unidata_version,
            "diffusers": diffusers.__version__,
            "beautifulsoup4": bs4.__version__,
            "ftfy": ftfy.__version__,
        },
        "cases": cases,
        "html5": dict(sorted(html.entities.html5.items())),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(args.entities, "w", encoding="ascii", newline="\n") as f:
        for key, text in sorted(html.entities.html5.items()):
            f.write(key + "\t" + " ".join(f"{ord(c):x}" for c in text) + "\n")
    print(f"wrote {len(cases)} prompts to {args.out}, {len(html.entities.html5)} entities to {args.entities}")


if __name__ == "__main__":
    main()
