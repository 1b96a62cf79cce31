"""script.llm: a topic or a user-written script becomes a title and one JSON object per scene.

Offline (no key) and user scripts are split locally and deterministically, and each scene is
derived only from its own text and index: editing one paragraph changes only that scene's
object, so only that scene's downstream work reruns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..providers import llm_anthropic, llm_gemini, llm_openai, usage
from ..providers.config import USE_CASES, ConfigError, load_config
from ..providers.llm_base import MOTIONS, SCENE_FIELDS, Script, ScriptRequest, validate_script
from ..types import NodeContext, NodeFailure, Port, node_type
from .costs import estimate_script, report_usage

_LLM_MODULES = {"openai": llm_openai, "anthropic": llm_anthropic, "gemini": llm_gemini}
LLM_ADAPTERS: dict[str, Callable[[ScriptRequest], Any]] = {name: m.complete for name, m in _LLM_MODULES.items()}
PROVIDERS = ("offline", *LLM_ADAPTERS)
WORDS_PER_SECOND = 2.5  # a calm narration pace (150 words a minute)
MIN_SCENE_SECONDS = 2.0
CAPTION_WORDS = 8
DEFAULT_OFFLINE_SCENES = 5

# Common English words (and the offline templates' filler) that make poor search keywords.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are around as at be because been before being
    below between both but by can could did do does doing down during each even ever every few for from further
    get gets got had has have having he her here hers him his how however i if in into is it its just let lets
    like made make makes many may me might more most much must my near never no nor not now of off often on once
    one only or other our ours out over own same she should so some still such than that the their theirs them
    then there these they this those through to too under until up upon us very was we were what when where which
    while who whom why will with within without would you your yours
    closer connects curious detail everyday eye first glance know little long look meets part people remember
    seems simple story surprising talk tells thing things time way follow""".split()
)

_OFFLINE_OPENING = "Let's talk about {topic}."
_OFFLINE_MIDDLE = (
    "At first glance, {topic} seems simple.",
    "Look closer and there is more to {topic} than meets the eye.",
    "People have been curious about {topic} for a long time.",
    "Every detail of {topic} tells part of the story.",
    "The most surprising part of {topic} is how it connects to everyday life.",
    "Here is what to remember about {topic}.",
)
_OFFLINE_CLOSING = "Now you know a little more about {topic}. Follow for more."


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text)


def keywords(text: str, limit: int = 4) -> list[str]:
    """Distinct content words in order of appearance; the first words if all are common."""
    words = _words(text)
    picked: list[str] = []
    for word in words:
        lower = word.lower().replace("’", "'")
        lower = lower[:-2] if lower.endswith("'s") else lower  # possessive: "coffee's" -> "coffee"
        if "'" in lower:  # contractions ("let's", "don't") are never the subject
            continue
        if len(lower) < 3 or lower in STOPWORDS or lower.isdigit() or lower in picked:
            continue
        picked.append(lower)
        if len(picked) == limit:
            break
    return picked or [word.lower() for word in words[:3]]


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?…])\s+", text, maxsplit=1)[0]


def _caption(narration: str) -> str:
    words = _first_sentence(narration).rstrip(".!?…:;,").split()
    return " ".join(words[:CAPTION_WORDS]) + ("…" if len(words) > CAPTION_WORDS else "")


def with_style(prompt: str, style: str) -> str:
    """The shared visual style appended to every image prompt, so scenes look alike."""
    style = style.strip()
    return f"{prompt}, {style}" if style else prompt


def offline_scene(text: str, index: int, style: str) -> dict[str, Any]:
    """One scene from its own text and position only (never from its neighbours)."""
    narration = " ".join(text.split())
    keys = keywords(narration)
    subject = ", ".join(keys) if keys else "abstract background"
    sentence = " ".join(_first_sentence(narration).split()[:30]).rstrip(".!?…:;,")
    return {
        "narration": narration,
        "caption": _caption(narration) or subject,
        "search_query": " ".join(keys) or subject,
        "image_prompt": with_style(f"{subject}; a vertical scene illustrating: {sentence}", style),
        "motion": MOTIONS[index % len(MOTIONS)],
        "seconds": round(max(MIN_SCENE_SECONDS, len(_words(narration)) / WORDS_PER_SECOND), 1),
    }


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?…])\s+", " ".join(text.split())) if s.strip()]


def split_script(text: str, scenes: int, seconds_per_scene: float) -> list[str]:
    """Blank-line paragraphs are the scenes; one paragraph is split by sentences instead,
    into ``scenes`` near-equal groups, or greedily into groups of about ``seconds_per_scene``."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paragraphs) != 1:
        return paragraphs
    sentences = _sentences(paragraphs[0])
    if scenes > 0:
        count = min(scenes, len(sentences))
        base, extra = divmod(len(sentences), count)
        groups, start = [], 0
        for index in range(count):
            size = base + (1 if index < extra else 0)
            groups.append(" ".join(sentences[start : start + size]))
            start += size
        return groups
    budget = seconds_per_scene * WORDS_PER_SECOND
    groups, current, used = [], [], 0
    for sentence in sentences:
        size = len(_words(sentence))
        if current and used + size > budget:
            groups.append(" ".join(current))
            current, used = [], 0
        current.append(sentence)
        used += size
    groups.append(" ".join(current))
    return groups


def _offline_topic_texts(topic: str, scenes: int) -> list[str]:
    count = scenes or DEFAULT_OFFLINE_SCENES
    if count == 1:
        return [_OFFLINE_OPENING.format(topic=topic)]
    middle = [_OFFLINE_MIDDLE[i % len(_OFFLINE_MIDDLE)] for i in range(count - 2)]
    return [template.format(topic=topic) for template in (_OFFLINE_OPENING, *middle, _OFFLINE_CLOSING)]


def _llm_script(provider: str, topic: str, use_case: str, scenes: int, seconds: float) -> Script:
    config = load_config()
    settings = getattr(config.llm, provider)
    request = ScriptRequest(
        topic=topic,
        use_case=use_case,
        scenes=scenes,
        seconds_per_scene=seconds,
        model=settings.model_for(use_case),
        max_tokens=config.llm.max_tokens,
        response_format=settings.response_format,
        grounded=use_case in settings.grounded,
    )
    return validate_script(provider, LLM_ADAPTERS[provider](request), scenes)


def _environment() -> dict[str, Any]:
    """The resolved LLM config (model per provider and use case) and endpoints enter the key:
    a config change that picks another model reruns the script."""
    endpoints = {name: module.endpoint() for name, module in _LLM_MODULES.items()}
    try:
        return {"llm": load_config().llm.model_dump(mode="json"), "llm_endpoints": endpoints}
    except ConfigError as exc:  # the run reports it; a key must still be computable
        return {"llm_config_error": str(exc), "llm_endpoints": endpoints}


@node_type(
    "script.llm",
    category="script",
    impl_version="1",
    deterministic=False,  # LLM replies vary: pinned on first result, "regenerate" asks again
    inputs=[
        Port("topic", "string", optional=True, default="", description="what the video is about"),
        Port(
            "script",
            "string",
            optional=True,
            default="",
            description="your own script, used as written: blank-line paragraphs are scenes "
            "(one paragraph is split by sentences); when set, no LLM is called",
        ),
        Port("use_case", "string", optional=True, default="story", description="story | news | complex (the model)"),
        Port("provider", "string", optional=True, default="offline", description=" | ".join(PROVIDERS)),
        Port(
            "scenes",
            "integer",
            optional=True,
            default=0,
            description="number of scenes; 0 lets the provider decide (offline: by paragraphs)",
        ),
        Port("seconds_per_scene", "number", optional=True, default=5.0),
        Port("style", "string", optional=True, default="", description="visual style added to every image prompt"),
    ],
    outputs=[
        Port("title", "string"),
        Port("script", "json", description='{"title", "scenes": [...]}'),
        Port(
            "scenes",
            "json",
            is_list=True,
            description="one object per scene: narration, caption, search_query, image_prompt, motion, seconds",
        ),
    ],
    environment=_environment,
    estimate_cost=estimate_script,
)
def script_llm(
    ctx: NodeContext,
    topic: str,
    script: str,
    use_case: str,
    provider: str,
    scenes: int,
    seconds_per_scene: float,
    style: str,
) -> dict[str, Any]:
    """Write a video script: title and scenes with narration, caption, image query and prompt, motion."""
    if use_case not in USE_CASES:
        raise NodeFailure(f"input 'use_case': {use_case!r} is not one of {', '.join(USE_CASES)}")
    if provider not in PROVIDERS:
        raise NodeFailure(f"input 'provider': {provider!r} is not one of {', '.join(PROVIDERS)}")
    if not 0 <= scenes <= 100:
        raise NodeFailure(f"input 'scenes': {scenes} is outside 0..100")
    if not 0.5 <= seconds_per_scene <= 120:
        raise NodeFailure(f"input 'seconds_per_scene': {seconds_per_scene} is outside 0.5..120")
    topic = " ".join(topic.split())
    if script.strip():
        texts = split_script(script, scenes, seconds_per_scene)
        objects = [offline_scene(text, index, style) for index, text in enumerate(texts)]
        title = topic or objects[0]["caption"].rstrip("…")
    elif not topic:
        raise NodeFailure("inputs 'topic' and 'script' are both empty: give a topic or write a script")
    elif provider == "offline":
        texts = _offline_topic_texts(topic, scenes)
        objects = [offline_scene(text, index, style) for index, text in enumerate(texts)]
        title = topic[:1].upper() + topic[1:]
    else:
        ctx.progress(0.1, f"asking {provider}")
        with usage.metered() as used:
            written = _llm_script(provider, topic, use_case, scenes, seconds_per_scene)
        report_usage(ctx, used)
        title = written.title
        objects = []
        for scene in written.scenes:
            fields = scene.model_dump()
            fields["image_prompt"] = with_style(fields["image_prompt"], style)
            fields["seconds"] = round(float(fields["seconds"]), 2)
            objects.append({name: fields[name] for name in SCENE_FIELDS})
    return {"title": title, "script": {"title": title, "scenes": objects}, "scenes": objects}


NODE_TYPES = [script_llm]
