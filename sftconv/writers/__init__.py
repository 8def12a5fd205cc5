"""Writers: a stream of Encoded samples -> shard files written atomically, then a manifest."""

from .manifest import MANIFEST_FILE, write_manifest
from .parquet import ParquetShardWriter, ShardInfo
from .rejects import REJECTS_FILE, RejectsWriter

WRITERS = {ParquetShardWriter.name: ParquetShardWriter}

__all__ = [
    "MANIFEST_FILE",
    "REJECTS_FILE",
    "WRITERS",
    "ParquetShardWriter",
    "RejectsWriter",
    "ShardInfo",
    "write_manifest",
]
