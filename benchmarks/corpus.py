"""A synthetic OpenAI-format chat corpus of a chosen size, the same bytes for the same seed."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there one all we their has been if would more when will who so no can said about "
    "model data training token loss mask answer question because however therefore example function value "
    "error result number first second between through during without within system user assistant python "
    "install dataset shard manifest tokenizer template message content reason count memory speed file line"
).split()
MULTILINGUAL = ["日本語の文章です。", "中文句子，测试。", "русский текст", "العربية", "हिन्दी", "café naïve", "🙂", "👍"]
CODE = [
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; ++i) {\n    total += values[i];\n}\n",
    "SELECT id, SUM(total) FROM orders GROUP BY id ORDER BY 2 DESC;\n",
    "const x = await fetch(url).then((r) => r.json());\n",
]


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(5, 25))
    if rng.random() < 0.1:
        words.append(rng.choice(MULTILINGUAL))
    if rng.random() < 0.2:
        words.append(str(rng.randint(0, 10**6)))
    return " ".join(words).capitalize() + rng.choice([".", ".", "?", "!"])


def paragraph(rng: random.Random, sentences: int) -> str:
    text = " ".join(sentence(rng) for _ in range(sentences))
    if rng.random() < 0.15:
        text += "\n\n```\n" + rng.choice(CODE) + "```"
    return text


def record(rng: random.Random) -> dict:
    messages = [{"role": "system", "content": paragraph(rng, 1)}] if rng.random() < 0.5 else []
    for _ in range(rng.choice([1, 1, 2, 3])):
        messages.append({"role": "user", "content": paragraph(rng, rng.randint(1, 4))})
        messages.append({"role": "assistant", "content": paragraph(rng, rng.randint(2, 12))})
    return {"messages": messages}


def write_corpus(path: Path, megabytes: float, seed: int = 0) -> int:
    """Write records until the file reaches `megabytes`; returns the record count."""
    rng = random.Random(seed)
    limit, size, count = megabytes * 1e6, 0, 0
    with open(path, "w", encoding="utf-8") as handle:
        while size < limit:
            line = json.dumps(record(rng), ensure_ascii=False) + "\n"
            handle.write(line)
            size += len(line.encode())
            count += 1
    return count


def write_other_containers(corpus: Path, folder: Path) -> dict[str, Path]:
    """The corpus also as Parquet and as a `save_to_disk` dataset, the same records in the same order."""
    import pyarrow.json as pj
    import pyarrow.parquet as pq
    from datasets import Dataset
    from datasets.table import InMemoryTable

    table = pj.read_json(corpus)
    pq.write_table(table, folder / "corpus.parquet", row_group_size=10_000)
    Dataset(InMemoryTable(table)).save_to_disk(str(folder / "corpus-hf"))
    return {"parquet": folder / "corpus.parquet", "hf": folder / "corpus-hf"}
