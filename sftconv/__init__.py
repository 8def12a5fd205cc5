"""sftconv: raw chat data -> exact Llama 3 token shards with loss masks."""

__version__ = "0.1.0"
