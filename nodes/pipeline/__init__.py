"""The video pipeline's node types: script, images, motion, voice, subtitles, music, mix, compose, checks."""

from ..types import NodeType
from .check import NODE_TYPES as CHECK_TYPES
from .compose import NODE_TYPES as COMPOSE_TYPES
from .images import NODE_TYPES as IMAGE_TYPES
from .mix import NODE_TYPES as MIX_TYPES
from .motion import NODE_TYPES as MOTION_TYPES
from .music import NODE_TYPES as MUSIC_TYPES
from .script import NODE_TYPES as SCRIPT_TYPES
from .subtitles import NODE_TYPES as SUBTITLE_TYPES
from .voice import NODE_TYPES as VOICE_TYPES

NODE_TYPES: list[NodeType] = [
    *SCRIPT_TYPES,
    *IMAGE_TYPES,
    *VOICE_TYPES,
    *SUBTITLE_TYPES,
    *MOTION_TYPES,
    *MUSIC_TYPES,
    *MIX_TYPES,
    *COMPOSE_TYPES,
    *CHECK_TYPES,
]
