"""Shapes: one raw record -> the messages of a Conversation. They know nothing about tokens."""

from .openai import OpenAIShape

SHAPES = {OpenAIShape.name: OpenAIShape}

__all__ = ["SHAPES", "OpenAIShape"]
