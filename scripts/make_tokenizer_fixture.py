#!/usr/bin/env python3
"""Reference WordPiece ids from HuggingFace's Python `BertTokenizer` (the slow, pure-Python
implementation of Google's tokenizer), for `crates/data/tests/tokenizer_parity.rs`.

The Rust side tokenizes with the `tokenizers` crate; checking it against itself (vocab.txt vs
tokenizer.json of the same crate) cannot catch a normalisation difference. This script is the
independent reference:

1. It trains a small WordPiece vocabulary on the bundled sample (`data/sample`) with the
   `tokenizers` Python package (so the test runs everywhere, without ../shared) and writes it
   to `crates/data/tests/fixtures/sample-vocab.txt`.
2. It takes every 6th paragraph of the sample (books: blank-line blocks; wiki: the `text` of
   each record, split at blank lines) and a list of hand-written edge cases (accents, CJK,
   control and format characters, punctuation, over-long words, literal special tokens).
3. It writes `crates/data/tests/fixtures/bert_tokenizer_sample.json` with the ids that
   `BertTokenizer(vocab, do_lower_case=…)` gives for each text: with the sample vocabulary
   uncased and cased, and, when `../shared/models/bert-uncased-wordpiece/vocab.txt` exists, with
   the standard uncased BERT vocabulary (ids only; the vocabulary itself is not copied).

Run from the repository root:

    python3 -m venv /tmp/tokvenv
    /tmp/tokvenv/bin/pip install "transformers==4.46.3" tokenizers
    /tmp/tokvenv/bin/python scripts/make_tokenizer_fixture.py
"""

import glob
import json
import os
import sys

from tokenizers import BertWordPieceTokenizer
from transformers import BertTokenizer
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample")
FIXTURES = os.path.join(ROOT, "crates", "data", "tests", "fixtures")
SHARED_VOCAB = os.path.join(
    ROOT, "..", "shared", "models", "bert-uncased-wordpiece", "vocab.txt"
)

EDGE_CASES = [
    "",
    "Hello, World! HELLO world MiXeD CaSe.",
    "Café naïve résumé — Ångström, Zoë and façade.",
    "e\u0301 (combining acute) vs \u00e9 (precomposed).",
    "Don't stop: it's 3.14159, isn't it?! Yes... no; maybe.",
    "e.g. U.S.A. No. 5, Mr. Smith's 1990s-era co-op (approx. 40%).",
    "#hashtag @mention $100 50% a&b x*y=z <tag> {brace} [bracket] `tick` ~tilde^ |pipe\\",
    "日本語のテキスト and 中文字符 mixed with English.",
    "한국어 텍스트 and ไทย script.",
    "Ελληνικά and Русский текст.",
    "Tab\tand\nnewline\r\nand\u00a0no-break\u2003em-space.",
    "Zero\u200bwidth and soft\u00adhyphen and bell\u0007 and nul\u0000 removed.",
    "Replacement \ufffd character.",
    "Emoji 🙂 and ☕ and 👩‍👩‍👧 family.",
    "Compatibility: ﬁne ½ ² Ⅻ ＡＢＣ fullwidth.",
    "a" * 120 + " over-long word",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Literal [MASK] and [CLS] and [SEP] and [UNK] in text.",
    "Quotes: “curly” ‘single’ «guillemets» „low“ and ellipsis…",
    "Dashes: en–dash em—dash minus−sign hyphen-minus.",
    "Numbers 1,234,567.89 and 10^6 and 3rd 21st 1/2.",
    "email@example.com https://example.org/path?q=1&r=2#frag",
]


def sample_texts():
    """Every 6th paragraph of the bundled sample, in sorted file order."""
    paragraphs = []
    for path in sorted(glob.glob(os.path.join(SAMPLE, "**", "*"), recursive=True)):
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            if path.endswith(".jsonl"):
                docs = [json.loads(line)["text"] for line in f if line.strip()]
            else:
                docs = [f.read()]
        for doc in docs:
            for block in doc.split("\n\n"):
                block = " ".join(line.strip() for line in block.splitlines()).strip()
                if block:
                    paragraphs.append(block)
    return paragraphs[::6]


def train_sample_vocab(path):
    """A 3,000-entry uncased WordPiece vocabulary of the sample."""
    files = sorted(
        p for p in glob.glob(os.path.join(SAMPLE, "**", "*"), recursive=True)
        if os.path.isfile(p)
    )
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train(files, vocab_size=3000, min_frequency=2, show_progress=False)
    vocab = tok.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")


def ids_for(vocab_file, lowercase, texts):
    tok = BertTokenizer(vocab_file, do_lower_case=lowercase)
    return [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    vocab = os.path.join(FIXTURES, "sample-vocab.txt")
    train_sample_vocab(vocab)
    texts = EDGE_CASES + sample_texts()
    out = {
        "generator": "scripts/make_tokenizer_fixture.py",
        "transformers": transformers.__version__,
        "texts": texts,
        "vocabularies": [
            {
                "vocab": "sample-vocab.txt",
                "lowercase": True,
                "ids": ids_for(vocab, True, texts),
            },
            {
                "vocab": "sample-vocab.txt",
                "lowercase": False,
                "ids": ids_for(vocab, False, texts),
            },
        ],
    }
    if os.path.isfile(SHARED_VOCAB):
        out["vocabularies"].append(
            {
                "vocab": "shared:models/bert-uncased-wordpiece/vocab.txt",
                "lowercase": True,
                "ids": ids_for(SHARED_VOCAB, True, texts),
            }
        )
    else:
        print("note: shared vocabulary not found; its ids are left out", file=sys.stderr)
    path = os.path.join(FIXTURES, "bert_tokenizer_sample.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: {len(texts)} texts, {len(out['vocabularies'])} vocabularies")


if __name__ == "__main__":
    main()
