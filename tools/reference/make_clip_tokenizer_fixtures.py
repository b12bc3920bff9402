#!/usr/bin/env python3
"""Golden fixtures for the CLIP BPE tokenizer (transformers' CLIPTokenizer), from the real vocabulary.

The real 49,408-token CLIP vocabulary ships inside the open_clip_torch wheel as
open_clip/bpe_simple_vocab_16e6.txt.gz (OpenAI's BPE merges). This script derives from it the
tokenizer folder a Stable Diffusion 2 / x4-upscaler pipeline holds, and the ids transformers gives:

  tokenizer/vocab.json, tokenizer/merges.txt
      transformers' layout: vocab = the 256 byte characters, the same with `</w>`, one token per
      merge (the first 49152-256-2 lines of the gz after its header), then <|startoftext|> and
      <|endoftext|> (49406, 49407); merges.txt = "#version: 0.2" and those merges.
  tokenizer/tokenizer_config.json, tokenizer/special_tokens_map.json
      as SD 2's: the config's pad_token is <|endoftext|> but special_tokens_map.json's is "!" (id 0),
      and transformers lets the map win (a config without added_tokens_decoder is "legacy").
      (Written here from the published files' known content, not downloaded: the Hugging Face Hub
      was out of reach when this was written.)
  openai_config/tokenizer_config.json, openai_config/special_tokens_map.json
      as OpenAI CLIP's (openai/clip-vit-large-patch14): pad = <|endoftext|>.
  tokenizer_json/tokenizer.template.json, tokenizer_json/tokenizer_config.json
      what transformers' save_pretrained writes, except that the template's model.vocab and
      model.merges are emptied (they are exactly vocab.json and merges.txt, checked here; the tests
      put them back) so that the 2 MB are not committed twice.
  tokens.json
      for each prompt of PROMPTS: transformers' ids and attention mask at max_length 77 (padding
      "max_length", truncation) from tokenizer/ (pad "!"), from openai_config/ (pad EOS) and from
      vocab.json + merges.txt alone (no config files: CLIPTokenizer's defaults), the ids without
      padding, and their tokens. `references` records, per prompt, where other tokenizers
      give other ids than transformers 5.24: transformers 4.x's slow (pure Python) CLIPTokenizer and
      its CLIPTokenizerFast (if --transformers4-python is given), and open_clip's SimpleTokenizer
      (the OpenCLIP/OpenAI original, ftfy + html.unescape cleaning, zero padding).

In transformers 5.24, CLIPTokenizerFast is CLIPTokenizer: one tokenizers-backed class; the slow
Python implementation only exists in transformers 4.x.

Run from the repository root:
    /work/venv/ref/bin/pip download open_clip_torch==3.3.0 --no-deps -d /tmp/oc
    (cd /tmp/oc && unzip -o open_clip_torch-3.3.0-py3-none-any.whl 'open_clip/*')
    # optional, for the transformers 4 comparison:
    python -m venv /tmp/tf4 && /tmp/tf4/bin/pip install "transformers==4.57.6" ftfy regex
    /work/venv/ref/bin/python tools/reference/make_clip_tokenizer_fixtures.py \
        --open-clip /tmp/oc/open_clip --transformers4-python /tmp/tf4/bin/python
(needs transformers, tokenizers, torch, ftfy, regex: see requirements.txt)
"""
import argparse
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import tokenizers
import transformers
from transformers import CLIPTokenizer

MAX_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

# Hard cases for CLIP's cleanup, pre-tokenizer regex and byte-level BPE.
PROMPTS = [
    "a photo of a cat",
    "A Photo of a CAT",
    "MiXeD CaSe WoRdS",
    "",
    " ",
    "\t\n  \r\n",
    "   leading and trailing spaces   ",
    "repeated    inner     spaces",
    "tabs\tand\nnewlines\n\nhere\r\nand crlf",
    "punctuation!!! ??? ... --- ;;; ::: ''' \"\"\" (([[{{}}]]))",
    "a cat!",
    "!",
    "!!",
    "a ! b !! c",
    "hello, world.",
    "it's the cat's toy; they're here, we've gone, I'm sure, you'll see, he'd go, don't",
    "IT'S UPPER CASE, DON'T SHOUT, WE'LL SEE",
    "rock 'n' roll ''s 's 'tis o'clock",
    "café naïve résumé über crème brûlée façade jalapeño straße",
    "decomposed: cafe\u0301 nai\u0308ve",
    "ﬁne ligatures and ｆｕｌｌｗｉｄｔｈ letters ＡＢＣ",
    "日本語のテキスト and 中文 mixed",
    "한국어 텍스트",
    "Привет мир, cyrillic text",
    "ΣΑΣ final sigma ελληνικά",
    "İstanbul ǅ ß ẞ",
    "مرحبا بالعالم",
    "emoji 🐱🐶 and 👨‍👩‍👧 family and flags 🇯🇵 ✨",
    "symbols © ® ™ € £ ¥ ° ± × ÷",
    "html entities &amp; &lt;b&gt; &quot;quoted&quot; &#39;s &nbsp; &amp;amp;",
    "numbers 1990 2023 3.14159 1,000,000 and 007 ½ ² ①",
    "https://example.com/path?q=1&x=2 and www.example.org user@mail.com",
    "#hashtag @user_name under_scores hyphen-ated dots.in.words",
    "<|startoftext|>typed special tokens<|endoftext|>",
    "a <|endoftext|> in the middle",
    "<|ENDOFTEXT|> upper-case special",
    "< |endoftext| > spaced",
    "<start_of_text> open_clip's names <end_of_text>",
    "quotes ‘single’ “double” «guillemets» — dash … ellipsis",
    "non-breaking\u00a0space, zero\u200bwidth, soft\u00adhyphen",
    "control \x00 \x07 \x1b chars",
    "unicode spaces:\u3000ideographic\u2028line\u0085nel\x0bvt\x0cff\u2009thin\u202fnarrow",
    "x" * 300,
    " ".join(["a long prompt that goes on"] * 20),
    " ".join(["a"] * 75),
    " ".join(["a"] * 76),
    "a watercolor sketch of a medieval castle in a forest, trending on artstation, ultra "
    "detailed, cinematic lighting, wide angle lens, bokeh, 8k, octane render, high quality",
    "ok",
]

# SD 2's tokenizer/ files (stabilityai/stable-diffusion-2, as the x4 upscaler's): note the
# conflicting pad tokens.
def _added(content):
    return {
        "__type": "AddedToken",
        "content": content,
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
    }


def _plain(content):
    t = _added(content)
    del t["__type"]
    return t


SD2_CONFIG = {
    "add_prefix_space": False,
    "bos_token": _added(BOS),
    "do_lower_case": True,
    "eos_token": _added(EOS),
    "errors": "replace",
    "model_max_length": MAX_LENGTH,
    "name_or_path": "stabilityai/stable-diffusion-2",
    "pad_token": EOS,
    "special_tokens_map_file": "./special_tokens_map.json",
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": _added(EOS),
}
SD2_SPECIAL = {
    "bos_token": _plain(BOS),
    "eos_token": _plain(EOS),
    "pad_token": "!",
    "unk_token": _plain(EOS),
}
OPENAI_CONFIG = {**SD2_CONFIG, "name_or_path": "openai/clip-vit-large-patch14"}
del OPENAI_CONFIG["special_tokens_map_file"]
OPENAI_SPECIAL = {**SD2_SPECIAL, "pad_token": EOS}


def bytes_to_unicode():
    """GPT-2's byte -> printable character table, in the order CLIP's vocabulary lists it."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_json(path, value, **kw):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, **kw)
        f.write("\n")


def write_vocab(bpe_gz, out):
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    chars = bytes_to_unicode()
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    assert len(vocab) == len(set(vocab)) == 49408
    write_json(os.path.join(out, "vocab.json"), {t: i for i, t in enumerate(vocab)})
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocab, merges


def load_open_clip(folder):
    spec = importlib.util.spec_from_file_location("oc_tokenizer", os.path.join(folder, "tokenizer.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SimpleTokenizer(os.path.join(folder, "bpe_simple_vocab_16e6.txt.gz"))


# transformers 4.x's slow CLIPTokenizer cleans text with ftfy when it can import it, and otherwise
# with BERT's BasicTokenizer (accent-keeping lower-casing, punctuation split): run both.
TF4_SCRIPT = r"""
import json, sys
folder, with_ftfy = sys.argv[1], sys.argv[2] == "1"
if not with_ftfy:
    sys.modules["ftfy"] = None  # import ftfy now raises ImportError
import transformers
from transformers import CLIPTokenizer, CLIPTokenizerFast
prompts = json.load(sys.stdin)
out = {"version": transformers.__version__}
for name, cls in [("slow", CLIPTokenizer), ("fast", CLIPTokenizerFast)]:
    tok = cls.from_pretrained(folder)
    out[name] = tok(prompts, max_length=77, padding="max_length", truncation=True)["input_ids"]
json.dump(out, sys.stdout)
"""


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "clip_tokenizer"))
    ap.add_argument("--open-clip", required=True, help="the open_clip package folder of the wheel")
    ap.add_argument("--transformers4-python", help="a Python with transformers 4.x (slow CLIPTokenizer)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    tok_dir = os.path.join(out, "tokenizer")
    openai_dir = os.path.join(out, "openai_config")
    json_dir = os.path.join(out, "tokenizer_json")
    for d in (tok_dir, openai_dir, json_dir):
        os.makedirs(d)

    vocab, merges = write_vocab(os.path.join(args.open_clip, "bpe_simple_vocab_16e6.txt.gz"), tok_dir)
    write_json(os.path.join(tok_dir, "tokenizer_config.json"), SD2_CONFIG, indent=2)
    write_json(os.path.join(tok_dir, "special_tokens_map.json"), SD2_SPECIAL, indent=2)
    write_json(os.path.join(openai_dir, "tokenizer_config.json"), OPENAI_CONFIG, indent=2)
    write_json(os.path.join(openai_dir, "special_tokens_map.json"), OPENAI_SPECIAL, indent=2)

    sd2 = CLIPTokenizer.from_pretrained(tok_dir)
    assert sd2.pad_token == "!" and sd2.pad_token_id == 0, (sd2.pad_token, sd2.pad_token_id)
    assert len(sd2) == 49408 and sd2.model_max_length == MAX_LENGTH
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(tok_dir, name), tmp)
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(openai_dir, name), tmp)
        openai = CLIPTokenizer.from_pretrained(tmp)
        # No config files at all: CLIPTokenizer's defaults (pad EOS, specials unnormalized).
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            os.remove(os.path.join(tmp, name))
        bare = CLIPTokenizer.from_pretrained(tmp)
    assert openai.pad_token == EOS and bare.pad_token == EOS, (openai.pad_token, bare.pad_token)

    # transformers' own tokenizer.json, vocab and merges taken out (identical to the files above).
    with tempfile.TemporaryDirectory() as tmp:
        sd2.save_pretrained(tmp)
        with open(os.path.join(tmp, "tokenizer.json"), encoding="utf-8") as f:
            full = json.load(f)
        assert full["model"]["vocab"] == {t: i for i, t in enumerate(vocab)}
        saved_merges = [" ".join(m) if isinstance(m, list) else m for m in full["model"]["merges"]]
        assert saved_merges == merges
        full["model"]["vocab"], full["model"]["merges"] = {}, []
        write_json(os.path.join(json_dir, "tokenizer.template.json"), full, indent=2)
        shutil.copy(os.path.join(tmp, "tokenizer_config.json"), json_dir)
        reloaded = CLIPTokenizer.from_pretrained(tmp)
    assert reloaded.pad_token_id == 0

    padded = sd2(PROMPTS, max_length=MAX_LENGTH, padding="max_length", truncation=True)
    eos_padded = openai(PROMPTS, max_length=MAX_LENGTH, padding="max_length", truncation=True)
    bare_padded = bare(PROMPTS, max_length=MAX_LENGTH, padding="max_length", truncation=True)
    plain = sd2(PROMPTS)
    assert reloaded(PROMPTS, max_length=MAX_LENGTH, padding="max_length", truncation=True)["input_ids"] == padded["input_ids"]

    # Which pad token wins, for config files the tests write (tests/clip_tokenizer.rs).
    pad_ids = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(tok_dir, name), tmp)
        shutil.copy(os.path.join(json_dir, "tokenizer_config.json"), tmp)
        shutil.copy(os.path.join(openai_dir, "special_tokens_map.json"), tmp)
        pad_ids["saved config + OpenAI map"] = CLIPTokenizer.from_pretrained(tmp).pad_token_id
        config_path = os.path.join(tmp, "tokenizer_config.json")
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        write_json(config_path, {**config, "added_tokens_decoder": {}})
        key = "saved config with added_tokens_decoder + OpenAI map"
        pad_ids[key] = CLIPTokenizer.from_pretrained(tmp).pad_token_id
        write_json(config_path, {"pad_token": "<pad>"})
        os.remove(os.path.join(tmp, "special_tokens_map.json"))
        pad_ids["config pad <pad>"] = CLIPTokenizer.from_pretrained(tmp).pad_token_id

    # Other tokenizers, compared with transformers 5.24 (pad "!" = 0, as open_clip pads).
    others = {}
    oc = load_open_clip(args.open_clip)
    others["open_clip SimpleTokenizer"] = oc(PROMPTS, context_length=MAX_LENGTH).tolist()
    if args.transformers4_python:
        for with_ftfy in (True, False):
            run = subprocess.run(
                [args.transformers4_python, "-c", TF4_SCRIPT, tok_dir, "1" if with_ftfy else "0"],
                input=json.dumps(PROMPTS), capture_output=True, text=True, check=True,
            )
            tf4 = json.loads(run.stdout)
            v = tf4["version"]
            if with_ftfy:
                others[f"transformers {v} CLIPTokenizer (slow, with ftfy)"] = tf4["slow"]
                others[f"transformers {v} CLIPTokenizerFast"] = tf4["fast"]
            else:
                others[f"transformers {v} CLIPTokenizer (slow, no ftfy)"] = tf4["slow"]

    prompts = []
    for i, p in enumerate(PROMPTS):
        entry = {
            "text": p,
            "input_ids": padded["input_ids"][i],
            "attention_mask": padded["attention_mask"][i],
            "input_ids_eos_pad": eos_padded["input_ids"][i],
            "attention_mask_eos_pad": eos_padded["attention_mask"][i],
            "input_ids_no_config": bare_padded["input_ids"][i],
            "attention_mask_no_config": bare_padded["attention_mask"][i],
            "ids_unpadded": plain["input_ids"][i],
            "tokens": sd2.convert_ids_to_tokens(plain["input_ids"][i]),
        }
        differ = {name: ids[i] for name, ids in others.items() if ids[i] != padded["input_ids"][i]}
        if differ:
            entry["references"] = differ
        prompts.append(entry)
    tokens = {
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "compared_with": sorted(others),
        "max_length": MAX_LENGTH,
        "vocab_size": len(sd2),
        "pad_ids": pad_ids,
        "prompts": prompts,
    }
    write_json(os.path.join(out, "tokens.json"), tokens, indent=1)
    n = sum("references" in p for p in prompts)
    print(f"wrote {out}: {len(prompts)} prompts, {n} where another tokenizer differs", file=sys.stderr)
    for p in prompts:
        for name, ids in p.get("references", {}).items():
            print(f"  {p['text'][:50]!r}: {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
