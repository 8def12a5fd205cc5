"""Chat templates: Conversation -> Encoded(input_ids, loss_mask)."""

from .llama3 import IGNORE_INDEX, Encoded, Llama3Template, MaskPolicy, Samples

TEMPLATES = {Llama3Template.name: Llama3Template}

__all__ = ["IGNORE_INDEX", "TEMPLATES", "Encoded", "Llama3Template", "MaskPolicy", "Samples"]
