"""Writers: a stream of samples or packed rows -> shard files written atomically, then a manifest."""

from .hf import HfShardWriter
from .jsonl import JsonlShardWriter
from .manifest import MANIFEST_FILE, write_manifest
from .megatron import MegatronShardWriter
from .parquet import ParquetShardWriter
from .rejects import REJECTS_FILE, RejectsWriter, join_rejects
from .shards import ShardInfo, ShardWriter

WRITERS: dict[str, type[ShardWriter]] = {
    writer.name: writer for writer in (ParquetShardWriter, HfShardWriter, MegatronShardWriter, JsonlShardWriter)
}

__all__ = [
    "MANIFEST_FILE",
    "REJECTS_FILE",
    "WRITERS",
    "HfShardWriter",
    "JsonlShardWriter",
    "MegatronShardWriter",
    "ParquetShardWriter",
    "RejectsWriter",
    "ShardInfo",
    "ShardWriter",
    "join_rejects",
    "write_manifest",
]
