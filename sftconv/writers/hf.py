"""Hugging Face `datasets` folders: Arrow shards plus the files `datasets.load_from_disk` reads.

The layout is the one `Dataset.save_to_disk` writes (`state.json`, `dataset_info.json`, Arrow
stream files with the features in their schema metadata), written here shard by shard while
streaming, so a dataset never has to fit in memory or pass through the `datasets` cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa

from .arrow import arrow_schema, to_table
from .atomic import temp_path
from .folder import Folder
from .shards import Columns, ShardInfo, ShardWriter

STATE_FILE = "state.json"
INFO_FILE = "dataset_info.json"
DESCRIPTION = "Llama 3 token ids, labels and loss masks written by sftconv; see manifest.json."


class HfShardWriter(ShardWriter):
    """Writes `shard-00000.arrow`, ... and, in `finish`, `dataset_info.json` and `state.json`.

    Load with `datasets.load_from_disk("out/")`; the columns are the Parquet writer's. An empty run
    still gets one empty shard, so the folder loads as an empty dataset. See `ShardWriter` for the arguments.
    """

    name = "hf"
    side_files = (INFO_FILE, STATE_FILE)

    def __init__(self, out_dir: Path, **limits):
        super().__init__(out_dir, **limits)
        from datasets import Features

        schema = arrow_schema(self.packed, self.keep)
        self.features = Features.from_arrow_schema(schema)
        self.schema = schema.with_metadata({**schema.metadata, **self.features.arrow_schema.metadata})

    def paths(self, index: int) -> list[Path]:
        return [self.out_dir / f"{self.stem(index)}.arrow"]

    def _start(self, index: int) -> None:
        self._sink = pa.OSFile(str(temp_path(self.paths(index)[0])), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)

    def _append(self, columns: Columns) -> None:
        self._writer.write_table(to_table(columns, self.packed, self.keep).replace_schema_metadata(self.schema.metadata))

    def _end(self) -> None:
        self._writer.close()
        self._sink.close()

    @classmethod
    def finish(cls, folder: Folder, shards: list[ShardInfo], *, packed: bool, keep: tuple[str, ...] = ()
               ) -> list[ShardInfo]:
        """Write the two files that make the folder a `datasets` dataset (and an empty shard if there is none)."""
        from datasets import DatasetInfo, Features

        if not shards:
            writer = cls(folder.local, packed=packed, prefix="part-00000-", publish=folder.publish, keep=keep)
            writer._start(0)
            writer._open = True
            # One empty record batch: `datasets` cannot load a stream that has none.
            writer._writer.write_batch(pa.RecordBatch.from_pylist([], schema=writer.schema))
            shards = writer.close()
        names = [f.name for shard in shards for f in shard.files]
        # save_to_disk's fingerprint names the content; a hash of the shards does so deterministically.
        fingerprint = hashlib.sha256("".join(f.sha256 for s in shards for f in s.files).encode()).hexdigest()
        state = {
            "_data_files": [{"filename": name} for name in names],
            "_fingerprint": fingerprint[:16],
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        }
        info = asdict(DatasetInfo(description=DESCRIPTION, features=Features.from_arrow_schema(arrow_schema(packed, keep))))
        folder.write_text(INFO_FILE, json.dumps({key: info[key] for key in sorted(info)}, indent=2))
        folder.write_text(STATE_FILE, json.dumps(state, indent=2, sort_keys=True))
        return shards
