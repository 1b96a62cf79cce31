"""Built-in node types."""

from ..types import NodeType
from .media import title_card, video_concat, video_still
from .text import json_items, json_pick, number_sum, text_join, text_split, text_template

NODE_TYPES: list[NodeType] = [
    text_template,
    text_split,
    text_join,
    json_pick,
    json_items,
    number_sum,
    title_card,
    video_still,
    video_concat,
]
