#!/usr/bin/env python3
"""Golden fixtures for the T5-v1.1 text encoder and its SentencePiece tokenizer (transformers).

Builds, seeded:
  - a SentencePiece unigram model trained here on a small generated corpus, with T5's settings
    (nmt_nfkc normalization, pad 0, eos 1, unk 2, no bos, no byte fallback), saved as IF ships its
    tokenizer: tokenizer/spiece.model alone; and the same tokenizer as transformers saves it
    (tokenizer_json/: tokenizer.json + tokenizer_config.json);
  - a tiny random T5 v1.1 encoder (gated-gelu, inner dim num_heads*d_kv != d_model, 3 layers)
    saved with save_pretrained as text_encoder/ (one file) and text_encoder_sharded/ (shards +
    index); its vocabulary is the SentencePiece pieces plus T5's 100 <extra_id_*> tokens;
  - tokens.json: for ~30 prompts, transformers' T5 tokenizer ids at max_length 77 (padding
    "max_length", truncation, </s> appended) and attention masks; plus the ids without padding;
  - encoder_io.safetensors: input_ids, attention_mask (int64) of 4 of those prompts, and the
    float64 last_hidden_state of the encoder (weights cast to float64).

The output folder (default tests/fixtures/t5/) is laid out like an IF pipeline folder
(text_encoder/, tokenizer/), so it also tests pipeline-folder loading.

Run from the repository root:
    /work/venv/ref/bin/python tools/reference/make_t5_fixtures.py
(needs torch, transformers, sentencepiece, protobuf: see requirements.txt)
"""
import argparse
import json
import os
import random
import shutil

import sentencepiece as spm
import torch
import transformers
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel, T5Tokenizer

MAX_LENGTH = 77
EXTRA_IDS = 100

# Words with accents, digits and punctuation, so the trained pieces cover what the prompts use.
WORDS = (
    "a photo of an the cat dog sitting on red blue green chair table in front with beautiful "
    "painting portrait landscape mountain river sunset city street night rain snow light dark "
    "old young man woman child playing running reading book garden flower tree sky cloud sea "
    "boat house window door car road bridge castle forest field golden hour cinematic detailed "
    "high quality 4k 8k 1990 2023 100 42 café naïve résumé über crème brûlée façade jalapeño "
    "straße smörgåsbord piñata déjà vu hello world teddy bear astronaut riding horse moon mars "
    "oil watercolor sketch drawing style by artist trending artstation octane render ultra "
    "wide angle lens bokeh macro close-up shot view from above below inside outside vintage "
    "retro futuristic cyberpunk steampunk fantasy medieval japanese chinese french italian"
).split()
PUNCT = [",", ".", "!", "?", ";", ":", "-", "'", '"', "(", ")", "#", "@", "/", "&"]

PROMPTS = [
    "a photo of a cat",
    "A Photo of a Cat",
    "a photo of a cat sitting on a red chair, golden hour, 4k",
    "",
    " ",
    "   leading and trailing spaces   ",
    "repeated    inner     spaces",
    "tabs\tand\nnewlines\n\nhere",
    "café naïve résumé über",
    "crème brûlée on a façade, jalapeño straße",
    "ﬁne ligatures and ｆｕｌｌｗｉｄｔｈ letters",
    "numbers 1990 2023 3.14159 1,000,000 and 007",
    "punctuation!!! ??? ... --- ;;; ::: ''' \"\"\"",
    "https://example.com/path?q=1 and www.example.org",
    "#hashtag #ai #art @user_name",
    "emoji 🐱 and symbols © ® ™ € £ ¥",
    "日本語のテキスト and 中文 mixed",
    "Привет мир, cyrillic text",
    "ελληνικά κείμενο",
    "unknown glyphs: ☃ ☄ ⚡",
    "a teddy bear astronaut riding a horse on the moon, oil painting by an old artist",
    "<extra_id_0> sentinel <extra_id_99> tokens",
    "</s> eos text and <pad> text and <unk>",
    "UPPER CASE PROMPT WITH MIXED case",
    "hyphenated-words and under_scores and dots.in.words",
    "quotes ‘single’ “double” «guillemets»",
    "x" * 40,
    " ".join(["a long prompt that goes on"] * 20),
    "ok",
    "a watercolor sketch of a medieval castle in a forest, trending on artstation, ultra "
    "detailed, cinematic lighting, wide angle lens, bokeh, 8k, octane render, high quality",
]


def corpus(seed, n):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.5:
            words.insert(rng.randrange(len(words)), rng.choice(PUNCT))
        line = " ".join(words)
        if rng.random() < 0.3:
            line = line.capitalize()
        lines.append(line)
    return lines + PROMPTS


def train_spm(out_dir, seed):
    os.makedirs(out_dir, exist_ok=True)
    text = os.path.join(out_dir, "corpus.txt")
    with open(text, "w") as f:
        f.write("\n".join(corpus(seed, 3000)))
    prefix = os.path.join(out_dir, "spiece")
    spm.SentencePieceTrainer.train(
        input=text,
        model_prefix=prefix,
        model_type="unigram",
        vocab_size=400,
        hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc",
        character_coverage=0.9995,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        byte_fallback=False,
        num_threads=1,
        seed_sentencepiece_size=100000,
    )
    os.remove(text)
    os.remove(prefix + ".vocab")
    return prefix + ".model"


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "t5"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    torch.manual_seed(0)

    model_file = train_spm(os.path.join(out, "tokenizer"), seed=7)
    # from_pretrained on the folder: transformers converts spiece.model to its tokenizers pipeline
    # (the constructor given only vocab_file builds an empty vocabulary in transformers 5).
    tok = T5Tokenizer.from_pretrained(os.path.dirname(model_file), extra_ids=EXTRA_IDS)
    assert len(tok) == spm.SentencePieceProcessor(model_file=model_file).get_piece_size() + EXTRA_IDS
    tok.save_pretrained(os.path.join(out, "tokenizer_json"))
    # Keep only what transformers needs to rebuild the same tokenizer from tokenizer.json.
    for name in os.listdir(os.path.join(out, "tokenizer_json")):
        if name not in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            os.remove(os.path.join(out, "tokenizer_json", name))

    padded = tok(PROMPTS, max_length=MAX_LENGTH, padding="max_length", truncation=True)
    plain = tok(PROMPTS)
    tokens = {
        "transformers": transformers.__version__,
        "sentencepiece": spm.__version__,
        "max_length": MAX_LENGTH,
        "vocab_size": len(tok),
        "prompts": [
            {
                "text": p,
                "input_ids": padded["input_ids"][i],
                "attention_mask": padded["attention_mask"][i],
                "ids_unpadded": plain["input_ids"][i],
                "pieces": tok.convert_ids_to_tokens(plain["input_ids"][i]),
            }
            for i, p in enumerate(PROMPTS)
        ],
    }
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump(tokens, f, indent=1, ensure_ascii=False)

    config = T5Config(
        vocab_size=len(tok),
        d_model=64,
        d_kv=16,
        num_heads=6,  # inner dim 96 != d_model, as in t5-v1_1-small
        d_ff=80,
        num_layers=3,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        layer_norm_epsilon=1e-6,
        dropout_rate=0.0,
        tie_word_embeddings=False,
        is_encoder_decoder=False,
        use_cache=False,
    )
    model = T5EncoderModel(config).eval()
    # Default init gives tiny activations; widen the weights so every layer matters numerically.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.uniform_(0.5, 1.5)
            elif "relative_attention_bias" in name:
                p.normal_(0.0, 1.0)
    model.save_pretrained(os.path.join(out, "text_encoder"))
    model.save_pretrained(os.path.join(out, "text_encoder_sharded"), max_shard_size="200KB")

    pick = [2, 5, 8, 27]  # short, spaces, accents, truncated at 77
    ids = torch.tensor([padded["input_ids"][i] for i in pick], dtype=torch.int64)
    mask = torch.tensor([padded["attention_mask"][i] for i in pick], dtype=torch.int64)
    with torch.no_grad():
        hidden = model.double()(input_ids=ids, attention_mask=mask).last_hidden_state
    save_file(
        {"input_ids": ids, "attention_mask": mask, "last_hidden_state": hidden.contiguous()},
        os.path.join(out, "encoder_io.safetensors"),
    )
    print(f"wrote {out}: vocab {len(tok)}, hidden max {hidden.abs().max():.3f}")


if __name__ == "__main__":
    main()
