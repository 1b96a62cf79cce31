"""The video pipeline's node types: script, images, motion, voice, subtitles, music, compose, checks."""

from ..types import NodeType
from .images import NODE_TYPES as IMAGE_TYPES
from .script import NODE_TYPES as SCRIPT_TYPES

NODE_TYPES: list[NodeType] = [*SCRIPT_TYPES, *IMAGE_TYPES]
