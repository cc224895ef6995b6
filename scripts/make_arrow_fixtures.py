#!/usr/bin/env python3
"""Generate the Arrow IPC corpus fixtures of `crates/data/tests/it/arrow_input.rs`.

The same small text is written as JSONL and as Arrow IPC the two ways HuggingFace data
reaches a user, so the Rust tests can check that each Arrow layout gives exactly the
documents (and prepared instances) of the JSONL:

  docs.jsonl           12 documents `{"id", "text"}`: sentences of the test vocabulary's
                       words (`w0` … `w399`, some split as `w12x3`), paragraphs separated by a
                       blank line, lines hard-wrapped inside paragraphs
  docs_saved/          `datasets.Dataset.from_dict(...).save_to_disk(..., num_shards=2)`:
                       Arrow *stream* format, two data files (`data-0000N-of-00002.arrow`)
                       next to `dataset_info.json` and `state.json`
  docs_file.arrow      the same table as an Arrow IPC *file* (`ARROW1` magic, footer), written
                       by pyarrow in record batches of 5 rows
  books.jsonl          one sentence per record `{"book_id", "book_no", "text"}`, 4 books of
                       3 to 7 sentences (the BookCorpus layout: records grouped by an id)
  books_saved/         `save_to_disk` of the books (stream format, one data file)
  books_file.arrow     the books as an IPC file in batches of 4 rows, so books cross batch
                       boundaries; `book_no` is an int64 column, `book_id` a string one

Environment (CPU only, no GPU; the machine needs to reach PyPI):

    python3 -m venv /tmp/arrow-venv
    /tmp/arrow-venv/bin/pip install pyarrow datasets
    /tmp/arrow-venv/bin/python scripts/make_arrow_fixtures.py

Written with pyarrow 26.0.1 and datasets 5.2.0. The text is drawn from a fixed seed, so it
is the same on every run; `datasets` records its own fingerprint and version in `state.json`
and `dataset_info.json`, which the reader does not look at.
"""

import json
import random
import shutil
from pathlib import Path

import datasets
import pyarrow as pa

OUT = Path(__file__).resolve().parent.parent / "crates" / "data" / "tests" / "fixtures" / "arrow"

# Words of the Rust tests' vocabulary (`support::make_vocab`): w0 … w399 and ##x0 … ##x9.
WORDS = 400


def sentence(rng: random.Random) -> str:
    words = []
    for j in range(rng.randint(4, 12)):
        w = f"w{rng.randrange(WORDS)}"
        if rng.random() < 0.1:
            w += f"x{rng.randrange(10)}"
        if j == 0:
            w = "W" + w[1:]
        words.append(w)
    return " ".join(words) + "."


def document(rng: random.Random) -> str:
    """3–14 sentences; a blank line every 5 sentences, a hard line break every 3."""
    text = ""
    for k in range(rng.randint(3, 14)):
        if k > 0:
            text += "\n\n" if k % 5 == 0 else "\n" if k % 3 == 0 else " "
        text += sentence(rng)
    return text


def write_file_format(table: pa.Table, path: Path, rows_per_batch: int) -> None:
    """An Arrow IPC file (not a stream), several record batches."""
    with pa.OSFile(str(path), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=rows_per_batch):
                writer.write_batch(batch)


def write_jsonl(rows: dict, path: Path) -> None:
    names = list(rows)
    with open(path, "w", encoding="utf-8") as f:
        for values in zip(*(rows[n] for n in names)):
            f.write(json.dumps(dict(zip(names, values)), ensure_ascii=False) + "\n")


def save_to_disk(rows: dict, folder: Path, num_shards: int) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder), num_shards=num_shards)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20240611)

    texts = [document(rng) for _ in range(12)]
    docs = {"id": [str(i) for i in range(len(texts))], "text": texts}
    write_jsonl(docs, OUT / "docs.jsonl")
    save_to_disk(docs, OUT / "docs_saved", num_shards=2)
    write_file_format(pa.table(docs), OUT / "docs_file.arrow", rows_per_batch=5)

    book_ids, book_nos, sentences = [], [], []
    for book in range(4):
        for _ in range(rng.randint(3, 7)):
            book_ids.append(f"b{book}")
            book_nos.append(book)
            sentences.append(sentence(rng))
    books = {"book_id": book_ids, "book_no": book_nos, "text": sentences}
    write_jsonl(books, OUT / "books.jsonl")
    save_to_disk(books, OUT / "books_saved", num_shards=1)
    table = pa.table(
        {
            "book_id": pa.array(book_ids, pa.string()),
            "book_no": pa.array(book_nos, pa.int64()),
            "text": pa.array(sentences, pa.string()),
        }
    )
    write_file_format(table, OUT / "books_file.arrow", rows_per_batch=4)

    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(OUT)}: {p.stat().st_size} bytes")
    print(f"pyarrow {pa.__version__}, datasets {datasets.__version__}")


if __name__ == "__main__":
    main()
