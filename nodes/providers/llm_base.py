"""What every LLM adapter shares: the script's shape (pydantic), the prompt, the JSON schema sent
to providers, and turning a reply into a validated script with a plain error when it is not one."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .http import ProviderError

Motion = Literal["zoom_in", "pan_right", "zoom_out", "pan_left"]
MOTIONS: tuple[str, ...] = Motion.__args__  # type: ignore[attr-defined]
SCENE_FIELDS = ("narration", "caption", "search_query", "image_prompt", "motion", "seconds")


class _Model(BaseModel):
    # extra keys a model adds are dropped, not fatal; missing or wrong ones are
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Scene(_Model):
    narration: str = Field(min_length=1, max_length=4000)
    caption: str = Field(min_length=1, max_length=300)
    search_query: str = Field(min_length=1, max_length=300)
    image_prompt: str = Field(min_length=1, max_length=4000)
    motion: Motion
    seconds: float = Field(gt=0, le=300)


class Script(_Model):
    title: str = Field(min_length=1, max_length=300)
    scenes: list[Scene] = Field(min_length=1, max_length=200)


@dataclass(frozen=True)
class ScriptRequest:
    """One script to write, with the model and options already resolved from config."""

    topic: str
    use_case: str
    scenes: int  # 0: the model chooses
    seconds_per_scene: float
    model: str
    max_tokens: int
    response_format: str = "json_schema"  # OpenAI-compatible only
    grounded: bool = False  # Gemini only: send the google_search tool


_FIELD_HELP = {
    "narration": "the words spoken over this scene, one to three short sentences",
    "caption": "on-screen caption, at most eight words",
    "search_query": "two to five words that find a fitting stock photo",
    "image_prompt": "a vivid visual description for an image generator; no text or lettering in the image",
    "motion": "camera move over the still: " + ", ".join(MOTIONS),
    "seconds": "how long the narration takes to speak, in seconds",
}

_USE_CASE_HINTS = {
    "story": "Tell an engaging story; the first scene is a hook.",
    "news": "Be factual and current: check facts with search, give names, places and dates exactly, no speculation.",
    "complex": "Explain the subject step by step, accurately and clearly, one idea per scene.",
}


def system_prompt() -> str:
    fields = "\n".join(f"- {name}: {help_text}" for name, help_text in _FIELD_HELP.items())
    return (
        "You write scripts for short vertical videos (9:16): spoken narration over one image per scene.\n"
        "Reply with a single JSON object and nothing else: "
        '{"title": string, "scenes": [{' + ", ".join(f'"{name}"' for name in SCENE_FIELDS) + "}]}.\n"
        f"Scene fields:\n{fields}"
    )


def user_prompt(request: ScriptRequest) -> str:
    count = f"exactly {request.scenes} scenes" if request.scenes > 0 else "between 4 and 8 scenes"
    return (
        f"Topic: {request.topic}\n"
        f"{_USE_CASE_HINTS.get(request.use_case, '')}\n"
        f"Write {count}, each about {request.seconds_per_scene:g} seconds of narration."
    )


def script_json_schema() -> dict[str, Any]:
    """The JSON Schema of a script, inline (no $ref) and closed, as strict structured outputs require."""
    scene = {
        "type": "object",
        "properties": {
            name: (
                {"type": "number", "description": _FIELD_HELP[name]}
                if name == "seconds"
                else {"type": "string", "enum": list(MOTIONS), "description": _FIELD_HELP[name]}
                if name == "motion"
                else {"type": "string", "description": _FIELD_HELP[name]}
            )
            for name in SCENE_FIELDS
        },
        "required": list(SCENE_FIELDS),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"title": {"type": "string"}, "scenes": {"type": "array", "items": scene}},
        "required": ["title", "scenes"],
        "additionalProperties": False,
    }


def parse_json_text(provider: str, text: str) -> Any:
    """A JSON value from a model's text reply, tolerating a code fence or prose around the object."""
    stripped = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, flags=re.DOTALL)
    if fence:
        stripped = fence.group(1)
    candidates = [stripped]
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    preview = " ".join(stripped.split())[:120]
    raise ProviderError(f"{provider}: the model did not reply with JSON (it began: {preview!r})")


def validate_script(provider: str, raw: Any, scenes_wanted: int) -> Script:
    """Check a reply against the script's shape; the error names the provider and the fields at fault."""
    try:
        script = Script.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'reply'}: {error['msg']}" for error in exc.errors()[:4]
        )
        more = f" (and {exc.error_count() - 4} more)" if exc.error_count() > 4 else ""
        shape = "the model's script does not have the expected shape"
        raise ProviderError(f"{provider}: {shape}: {problems}{more}") from None
    if scenes_wanted > 0:
        if len(script.scenes) < scenes_wanted:
            written = len(script.scenes)
            raise ProviderError(f"{provider}: asked for {scenes_wanted} scenes but the model wrote {written}")
        script = script.model_copy(update={"scenes": script.scenes[:scenes_wanted]})
    return script
