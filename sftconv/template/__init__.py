"""Chat templates: Conversation -> Encoded(input_ids, loss_mask)."""

from .llama3 import IGNORE_INDEX, Encoded, Llama3Template, MaskPolicy, Samples
from .llama31 import Llama31Template, ToolPlacement

TEMPLATES = {template.name: template for template in (Llama3Template, Llama31Template)}

__all__ = ["IGNORE_INDEX", "TEMPLATES", "Encoded", "Llama31Template", "Llama3Template", "MaskPolicy", "Samples",
           "ToolPlacement"]
