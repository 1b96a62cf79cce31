"""Compose benchmark: a narrated, subtitled vertical video assembled by the engine, against the
encode floor and MoviePy.

    .venv/bin/python -m reelgraph.tests.bench.compose_bench            # full: about 6-8 min on 2 cores
    .venv/bin/python -m reelgraph.tests.bench.compose_bench --quick    # smoke: about a minute
    .venv/bin/python -m reelgraph.tests.bench.compose_bench --json compose.json

"Our compose" is N x video.segment (fanned out, `workers` at a time), 1 x audio.mix (the
soundtrack, beside the segments) and 1 x video.compose, run by the engine on a fresh cache. The
floor is one ffmpeg encode of the concatenated clips, video only, with the segments' encoder
settings (x264's threads left automatic: the fastest for one encode alone). MoviePy (a bench-only dependency: `pip install
moviepy`) does the same composition in a subprocess, with the same x264 binary and settings.
Inputs (clips, narration, subtitles, music) are built first, outside every timing.

Timings are reported, never asserted: exit status 0 whatever the numbers, 1 only when a
benchmark could not run at all.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import ffmpeg
from reelgraph.engine import Engine, RunOptions, RunResult
from reelgraph.graphs.validate import bind_recipe, parse_recipe
from reelgraph.nodes.builtin.ffmpeg_tools import run_ffmpeg
from reelgraph.nodes.pipeline import compose, images, mix, motion, music, subtitles, voice
from reelgraph.nodes.pipeline.encoding import video_encode
from reelgraph.nodes.registry import NodeRegistry
from reelgraph.nodes.types import NodeContext, NodeType, Port, node_type

from reelgraph.tests.bench.run_benchmarks import Row, Scratch, environment, open_engine, render

MB = 1e6
MOTIONS = ("zoom_in", "pan_left", "zoom_out", "pan_up", "pan_right", "pan_down")
SENTENCES = (
    "Honeybees turn flower nectar into honey, and the whole hive helps.",
    "Forager bees visit many flowers on a single trip.",
    "They carry the nectar home in a special honey stomach.",
    "House bees add enzymes and spread it across the wax cells.",
    "Thousands of wings fan the comb until the water evaporates.",
    "Finally the bees cap each cell with wax for the winter.",
)
EDITED = "Back at the hive, busy workers pass the nectar from bee to bee."


# ---- settings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    mode: str
    width: int = 1080
    height: int = 1920
    fps: int = 30
    scenes: int = 6
    scene_seconds: float = 5.0
    long_scenes: int = 24  # the RSS-flatness run (24 x 5 s = 120 s); 0 skips it
    moviepy: bool = True
    preset: str = "balanced"  # the template's default; used by segments, floor and MoviePy alike
    workers: int = max(2, os.cpu_count() or 2)  # what `reelgraph run` uses by default
    edited_scene: int = 2  # 0-based: "scene 3"
    seed: int = 0  # unused; run_benchmarks.render shows it

    @property
    def seconds(self) -> float:
        return self.scenes * self.scene_seconds


FULL = Settings(mode="full")
QUICK = Settings(mode="quick", width=540, height=960, scene_seconds=2.0, long_scenes=0, moviepy=False)


# ---- a stand-in for the upstream of the segments ----------------------------------------------
@node_type(
    "composebench.scenes",
    category="bench",
    inputs=[
        Port("clips", "video", is_list=True),
        Port("narrations", "audio", is_list=True),
        Port("subtitles", "file", is_list=True),
        Port("seconds", "number", is_list=True),
    ],
    outputs=[
        Port("video", "video", is_list=True),
        Port("audio", "audio", is_list=True),
        Port("subtitles", "file", is_list=True),
        Port("seconds", "number", is_list=True),
    ],
)
def scene_lists(
    ctx: NodeContext, clips: list[Path], narrations: list[Path], subtitles: list[Path], seconds: list[float]
) -> dict[str, Any]:
    """Passes prepared per-scene files through as lists, so video.segment fans out as in a template
    (recipe literals never fan out). Passed-through files keep their documents: no copy, no work."""
    return {"video": clips, "audio": narrations, "subtitles": subtitles, "seconds": seconds}


REGISTRY_TYPES: list[NodeType] = [*compose.NODE_TYPES, *mix.NODE_TYPES, scene_lists]


# ---- inputs (built once, outside every timing) -----------------------------------------------
@dataclass
class Scene:
    clip: Path
    narration: Path
    ass: Path
    words: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Inputs:
    scenes: list[Scene]
    music: Path


def call(nt: NodeType, folder: Path, **given: Any) -> dict[str, Any]:
    """Run a node function directly in its own work folder, optional inputs at their defaults."""
    folder.mkdir(parents=True)
    kwargs = {port.name: given.get(port.name, port.default) for port in nt.inputs}
    return dict(nt.run(NodeContext(folder, nt.id, None), **kwargs))


def scene_text(index: int) -> str:
    text = SENTENCES[index % len(SENTENCES)]
    return text if index < len(SENTENCES) else f"Part {index + 1}. {text}"  # every narration differs


def make_clips(s: Settings, folder: Path, count: int) -> list[Path]:
    """Ken Burns moves over generated stills: the template's offline path, H.264 intermediates."""
    folder.mkdir(parents=True)
    clips = []
    for index in range(count):
        still = folder / f"still{index}.png"
        images.render_still(f"scene {index} of the honeybee story", "warm golden light", index, s.width, s.height).save(still)
        made = call(motion.image_to_video, folder / f"clip{index}", image=still, seconds=s.scene_seconds,
                    fps=s.fps, width=s.width, height=s.height, motion=MOTIONS[index % len(MOTIONS)])
        clips.append(made["video"])
    return clips


def make_scene(s: Settings, folder: Path, clip: Path, text: str) -> Scene:
    spoken = call(voice.tts, folder / "tts", text=text)
    ass = call(subtitles.render, folder / "ass", words=spoken["words"], duration=spoken["duration"],
               width=s.width, height=s.height)["ass"]
    return Scene(clip, spoken["audio"], ass, spoken["words"])


def make_inputs(s: Settings, folder: Path, clips: list[Path], count: int) -> Inputs:
    scenes = [make_scene(s, folder / f"scene{i}", clips[i % len(clips)], scene_text(i)) for i in range(count)]
    track = call(music.music, folder / "music", seconds=count * s.scene_seconds)["audio"]
    return Inputs(scenes, track)


# ---- our compose, through the engine ---------------------------------------------------------
def recipe(s: Settings, inputs: Inputs) -> dict[str, Any]:
    scenes = inputs.scenes
    return {
        "name": "compose-bench",
        "nodes": {
            "scenes": {
                "type": "composebench.scenes",
                "inputs": {
                    "clips": [str(x.clip) for x in scenes],
                    "narrations": [str(x.narration) for x in scenes],
                    "subtitles": [str(x.ass) for x in scenes],
                    "seconds": [s.scene_seconds] * len(scenes),
                },
            },
            # first: the engine starts ready work in recipe order, so the soundtrack (one core for
            # about a second) overlaps the first segments instead of running alone after the last
            "soundtrack": {
                "type": "audio.mix",
                "inputs": {
                    "narration": {"link": ["scenes", "audio"]},
                    "seconds": {"link": ["scenes", "seconds"]},
                    "fps": s.fps,
                    "music": str(inputs.music),
                },
            },
            "segment": {
                "type": "video.segment",
                "inputs": {
                    "video": {"link": ["scenes", "video"]},
                    "subtitles": {"link": ["scenes", "subtitles"]},
                    "seconds": {"link": ["scenes", "seconds"]},
                    "width": s.width,
                    "height": s.height,
                    "fps": s.fps,
                    "preset": s.preset,
                },
            },
            "compose": {
                "type": "video.compose",
                "inputs": {"segments": {"link": ["segment", "video"]}, "audio": {"link": ["soundtrack", "audio"]}},
            },
        },
        "outputs": {"video": {"link": ["compose", "video"]}},
    }


@dataclass
class Spent:
    wall: float = 0.0
    cpu: float = 0.0  # user + sys of this process and its (waited-for) children: less sensitive to load than wall


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def spending() -> Iterator[Spent]:
    spent, wall, cpu = Spent(), time.perf_counter(), cpu_seconds()
    try:
        yield spent
    finally:
        spent.wall, spent.cpu = time.perf_counter() - wall, cpu_seconds() - cpu


@dataclass
class Compose:
    spent: Spent
    result: RunResult
    video: Path
    peak_rss: int  # bytes, this process and its descendants
    rss_before: int  # bytes, this process alone just before the run


def run_compose(engine: Engine, s: Settings, inputs: Inputs, base: Path) -> Compose:
    bound = bind_recipe(parse_recipe(recipe(s, inputs)), NodeRegistry(REGISTRY_TYPES), base_dir=base)
    rss_before = _rss(os.getpid())
    with TreeRss(os.getpid()) as rss, spending() as spent:
        result = engine.run(bound, RunOptions(workers=s.workers))
    if result.status != "succeeded":
        causes = "; ".join(f"{e.node}[{e.element}]: {e.error}" for e in result.failures)
        raise RuntimeError(f"the compose run {result.status}: {causes}")
    video = engine.store.blob_path(result.outputs["video"].elements[0]["$artifact"])
    check_video(video, s, len(inputs.scenes) * s.scene_seconds, audio=True)
    return Compose(spent, result, video, rss.peak, rss_before)


def executed(result: RunResult) -> list[str]:
    return sorted(f"{e.node}" + ("" if e.element is None else f"[{e.element}]") for e in result.executions
                  if e.status == "executed")


def node_seconds(result: RunResult, node: str) -> list[float]:
    return [e.seconds for e in result.executions if e.node == node and e.status == "executed"]


# ---- the floor ------------------------------------------------------------------------------
def encode_floor(s: Settings, clips: list[Path], folder: Path) -> Spent:
    """One ffmpeg encode of the clips joined by the concat demuxer, video only, segment settings
    except x264's threads: automatic, the fastest for one encode alone (segments use 2 each, the
    fastest two at a time; here the floor with 2 takes about 5 % longer)."""
    listing = folder / "clips.ffconcat"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{clip}'\n" for clip in clips))
    out = folder / "floor.mp4"
    picture = ffmpeg.input(str(listing), f="concat", safe=0).video
    encode = video_encode(s.preset, "h264", s.fps).args(threads=None)
    stream = picture.output(str(out), r=s.fps, an=None, movflags="+faststart", **encode)
    with spending() as spent:
        run_ffmpeg(stream, "encode the floor")
    check_video(out, s, len(clips) * s.scene_seconds, audio=False)
    return spent


def check_video(path: Path, s: Settings, seconds: float, *, audio: bool) -> None:
    """A timing only counts if the output is the video asked for."""
    info = ffmpeg.probe(str(path))
    kinds = {stream["codec_type"]: stream for stream in info["streams"]}
    picture = kinds.get("video")
    if picture is None or (picture["width"], picture["height"]) != (s.width, s.height):
        raise RuntimeError(f"{path.name}: expected {s.width}x{s.height} video, got {picture and (picture['width'], picture['height'])}")
    if audio and "audio" not in kinds:
        raise RuntimeError(f"{path.name}: no audio stream")
    duration = float(info["format"]["duration"])
    if abs(duration - seconds) > 0.1:
        raise RuntimeError(f"{path.name}: {duration:.3f} s long, expected {seconds:.3f} s")


# ---- MoviePy, in a subprocess ---------------------------------------------------------------
def caption_slices(s: Settings, scene: Scene, offset: float) -> list[dict[str, Any]]:
    """The ASS file's events as plain data: per line, one slice per spoken word (same grouping and
    timing as subtitles.render), on the whole video's clock."""
    duration = s.scene_seconds
    lines = subtitles.group_lines(subtitles.parse_words(scene.words, duration), 4, duration)
    slices = []
    for number, line in enumerate(lines):
        spoken = [i for i, word in enumerate(line.words) if word.end > word.start] or [-1]
        starts = [line.start] + [line.words[i].start for i in spoken[1:]]
        ends = starts[1:] + [line.end]
        for active, start, end in zip(spoken, starts, ends):
            if end > start:
                slices.append({"line": f"{offset:.3f}-{number}", "words": [w.text for w in line.words],
                               "active": active, "start": offset + start, "end": offset + end,
                               "line_start": offset + line.start, "line_end": offset + line.end})
    return slices


def font_file() -> str:
    found = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans:bold"], capture_output=True, text=True, check=False)
    return found.stdout.strip()


def moviepy_python() -> str:
    """MoviePy pins pillow<12, so it lives in its own venv (scripts/bench.sh makes .venv-moviepy)."""
    return os.environ.get("REELGRAPH_MOVIEPY_PYTHON") or sys.executable


def moviepy_available() -> bool:
    probe = subprocess.run([moviepy_python(), "-c", "import moviepy, reelgraph"], capture_output=True)
    return probe.returncode == 0


def run_moviepy(s: Settings, inputs: Inputs, folder: Path) -> tuple[Spent, int, dict[str, Any]]:
    """(wall: in the child, first clip load to written file; cpu: the whole child process tree; peak RSS of
    that tree; the child's report)."""
    style = subtitles.PRESETS["bold"]
    size = round(s.width * style.size)
    speed_args = video_encode(s.preset, "h264", s.fps).args()
    job = {
        "width": s.width, "height": s.height, "fps": s.fps, "scene_seconds": s.scene_seconds,
        "clips": [str(x.clip) for x in inputs.scenes],
        "narrations": [str(x.narration) for x in inputs.scenes],
        "music": str(inputs.music),
        "captions": [c for i, x in enumerate(inputs.scenes) for c in caption_slices(s, x, i * s.scene_seconds)],
        "font": font_file(), "font_size": size, "stroke": max(1, round(size * style.outline)),
        "primary": style.primary, "highlight": style.highlight, "outline_color": style.outline_color,
        "margin_v": round(s.height * subtitles.POSITIONS["bottom"][1]),
        "preset": speed_args["preset"],
        "ffmpeg_params": ["-crf", str(speed_args["crf"]), "-pix_fmt", "yuv420p", "-profile:v", "high",
                          "-x264-params", speed_args["x264-params"]],
        "threads": 2,
        "out": str(folder / "moviepy.mp4"), "temp_audio": str(folder / "moviepy-audio.m4a"),
        "report": str(folder / "report.json"),
    }
    (folder / "job.json").write_text(json.dumps(job))
    env = dict(os.environ)
    system_ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    env["FFMPEG_BINARY"] = env["IMAGEIO_FFMPEG_EXE"] = system_ffmpeg  # the same x264 build as ours
    # by its installed name: the child runs in the scratch folder, where `tests.…` would not import
    command = [moviepy_python(), "-m", "reelgraph.tests.bench.compose_bench", "--moviepy-child", str(folder / "job.json")]
    child = subprocess.Popen(command, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeRss(child.pid) as rss, spending() as spent:
        out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the MoviePy run exited {child.returncode}: {(err or out).strip()[-800:]}")
    report = json.loads(Path(job["report"]).read_text())
    check_video(Path(job["out"]), s, s.seconds, audio=True)
    return Spent(report["seconds"], spent.cpu), rss.peak, report


def moviepy_child(job_path: Path) -> int:
    """The MoviePy composition (runs in its own process, so its memory is measured alone)."""
    job = json.loads(job_path.read_text())
    rss_at_start = _rss(os.getpid())
    from moviepy import (
        AudioFileClip,
        CompositeAudioClip,
        CompositeVideoClip,
        TextClip,
        VideoFileClip,
        concatenate_videoclips,
    )
    from PIL import ImageFont

    started = time.perf_counter()
    width, height, seconds = job["width"], job["height"], job["scene_seconds"]
    clips = []
    for path in job["clips"]:
        clip = VideoFileClip(path, audio=False)
        if tuple(clip.size) != (width, height):  # as ffmpeg's scale: work only when the size differs
            clip = clip.resized((width, height))
        clips.append(clip.subclipped(0, min(seconds, clip.duration)))
    video = concatenate_videoclips(clips, method="chain")
    total = video.duration

    # Captions: per line a white, outlined line of text; per word slice the active word in the
    # highlight colour laid over it (libass draws the same in one pass from the ASS events).
    font = ImageFont.truetype(job["font"], job["font_size"])
    text_style = {"font": job["font"], "font_size": job["font_size"], "stroke_color": job["outline_color"],
                  "stroke_width": job["stroke"], "method": "label"}
    overlays = []
    lines: dict[str, Any] = {}
    for cue in job["captions"]:
        text = " ".join(cue["words"])
        if cue["line"] not in lines:
            line = TextClip(text=text, color=job["primary"], **text_style)
            y = height - job["margin_v"] - line.h
            x = (width - line.w) / 2
            lines[cue["line"]] = (x, y)
            overlays.append(line.with_start(cue["line_start"]).with_duration(cue["line_end"] - cue["line_start"])
                            .with_position((x, y)))
        if cue["active"] < 0:
            continue
        x, y = lines[cue["line"]]
        prefix = " ".join(cue["words"][: cue["active"]]) + (" " if cue["active"] else "")
        word = TextClip(text=cue["words"][cue["active"]], color=job["highlight"], **text_style)
        overlays.append(word.with_start(cue["start"]).with_duration(cue["end"] - cue["start"])
                        .with_position((x + font.getlength(prefix), y)))
    picture = CompositeVideoClip([video, *overlays], size=(width, height)).with_duration(total)

    narrations = []
    for index, path in enumerate(job["narrations"]):
        sound = AudioFileClip(path)
        narrations.append(sound.subclipped(0, min(seconds, sound.duration)).with_start(index * seconds))
    bed = AudioFileClip(job["music"]).with_volume_scaled(10 ** (-18 / 20))  # no ducking: MoviePy has no sidechain
    picture = picture.with_audio(CompositeAudioClip([*narrations, bed]).with_duration(total))
    picture.write_videofile(
        job["out"], fps=job["fps"], codec="libx264", preset=job["preset"], ffmpeg_params=job["ffmpeg_params"],
        audio_codec="aac", audio_bitrate="192k", audio_fps=48000, threads=job["threads"],
        temp_audiofile=job["temp_audio"], logger=None,
    )
    elapsed = time.perf_counter() - started
    from importlib.metadata import version

    from moviepy.config import FFMPEG_BINARY

    Path(job["report"]).write_text(json.dumps({
        "seconds": elapsed, "rss_at_start": rss_at_start, "overlays": len(overlays),
        "moviepy": version("moviepy"), "ffmpeg": FFMPEG_BINARY,
    }))
    return 0


# ---- memory ---------------------------------------------------------------------------------
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0  # gone between listing and reading


def _descendants(pid: int) -> Iterator[int]:
    """Every live descendant, through each thread's children list (ffmpeg starts from worker threads)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                children = [int(child) for child in listing.read().split()]
        except OSError:
            continue
        for child in children:
            yield child
            yield from _descendants(child)


class TreeRss:
    """Peak of the summed RSS of a process and all its descendants, sampled every 50 ms.

    Summed, because the segments' ffmpeg processes run side by side; sampled, so a spike shorter
    than the interval can be missed (ffmpeg holds its encode buffers for the whole encode)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        while True:
            total = _rss(self.pid) + sum(_rss(child) for child in _descendants(self.pid))
            self.peak = max(self.peak, total)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- the benchmark --------------------------------------------------------------------------
def step(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench(s: Settings, scratch: Scratch, rows: list[Row]) -> None:
    video_label = f"{s.seconds:g} s {s.width}x{s.height}@{s.fps}, {s.scenes} scenes"
    step(f"building inputs: {s.scenes} clips of {s.scene_seconds:g} s, narration, subtitles, music ...")
    inputs_dir = scratch.folder("inputs")
    clips = make_clips(s, inputs_dir / "clips", s.scenes)
    inputs = make_inputs(s, inputs_dir / "short", clips, s.scenes)

    step("floor: one ffmpeg encode of the concatenated clips ...")
    floor = encode_floor(s, clips, scratch.folder("floor"))
    floor_label = "floor: 1 ffmpeg encode of the clips"

    step("our compose: engine run on a fresh cache ...")
    with open_engine(scratch.folder("home")) as engine:
        first = run_compose(engine, s, inputs, scratch.root)
        expected = sorted(["scenes", "soundtrack", "compose", *(f"segment[{i}]" for i in range(s.scenes))])
        if executed(first.result) != expected:
            raise RuntimeError(f"the first compose executed {executed(first.result)}, expected {expected}")

        step(f"recompose after editing scene {s.edited_scene + 1}'s text ...")
        scenes = list(inputs.scenes)
        scenes[s.edited_scene] = make_scene(s, inputs_dir / "edited", scenes[s.edited_scene].clip, EDITED)
        edited_inputs = replace(inputs, scenes=scenes)
        again = run_compose(engine, s, edited_inputs, scratch.root)
        expected = ["compose", "scenes", f"segment[{s.edited_scene}]", "soundtrack"]
        if executed(again.result) != expected:
            raise RuntimeError(f"the recompose executed {executed(again.result)}, expected {expected}")

    segments = node_seconds(first.result, "segment")
    joined = node_seconds(first.result, "compose")[0]
    soundtrack = node_seconds(first.result, "soundtrack")[0]
    cpu_label = "  CPU seconds (user+sys, process + children)"
    rows += [
        Row("A first compose", f"{video_label}: engine run, fresh cache, workers={s.workers}", first.spent.wall, "s",
            target=1.1 * floor.wall, baseline_label=floor_label, baseline=floor.wall,
            note=f"target = 1.1 x the floor; {s.scenes} video.segment + 1 audio.mix + 1 video.compose, preset {s.preset!r}"),
        Row("A first compose", cpu_label, first.spent.cpu, "s", baseline_label="floor's CPU seconds", baseline=floor.cpu,
            note="CPU time moves less than wall time with other load on the machine"),
        Row("A first compose", "  floor: ffmpeg concat demuxer -> 1 encode, video only", floor.wall, "s"),
        Row("A first compose", "  video.compose (node seconds): stream-copy join, after the last segment", joined, "s",
            baseline_label="first compose wall", baseline=first.spent.wall),
        Row("A first compose", "  audio.mix (node seconds): the soundtrack, beside the segments", soundtrack, "s",
            baseline_label="first compose wall", baseline=first.spent.wall),
        Row("A first compose", f"  video.segment, mean node seconds ({len(segments)} run {s.workers} at a time)",
            sum(segments) / len(segments), "s", baseline_label="floor / scenes", baseline=floor.wall / s.scenes),
        Row("B recompose", f"edit scene {s.edited_scene + 1}'s text: engine rerun", again.spent.wall, "s",
            target=floor.wall / 6 + 1, baseline_label=floor_label, baseline=floor.wall,
            note=f"target = floor / 6 + 1 s; executed: {', '.join(executed(again.result))} (video.segment"
                 f" {node_seconds(again.result, 'segment')[0]:.2f} s beside audio.mix"
                 f" {node_seconds(again.result, 'soundtrack')[0]:.2f} s, then video.compose"
                 f" {node_seconds(again.result, 'compose')[0]:.2f} s); new TTS + ASS built before the timing"),
        Row("B recompose", cpu_label, again.spent.cpu, "s", baseline_label="floor's CPU seconds / 6",
            baseline=floor.cpu / 6),
        Row("B recompose", "  vs the first compose", again.spent.wall, "s",
            baseline_label="first compose", baseline=first.spent.wall),
        Row("C peak RSS", f"{s.seconds:g} s compose: engine process + ffmpeg children", round(first.peak_rss / MB), "MB",
            target=1000.0, note="summed RSS of the process tree, sampled every 50 ms during engine.run; this"
            f" process alone before the run: {first.rss_before / MB:.0f} MB"),
    ]

    if s.moviepy and not moviepy_available():
        rows.append(Row("A first compose", f"  MoviePy 2.x: not importable by {moviepy_python()}, skipped", None, "s"))
    elif s.moviepy:
        step("MoviePy: the same composition in a subprocess (about a minute or two) ...")
        movie, movie_rss, child = run_moviepy(s, inputs, scratch.folder("moviepy"))
        rows += [
            Row("A first compose", f"  MoviePy {child['moviepy']}, same composition, threads=2", movie.wall, "s",
                baseline_label=floor_label, baseline=floor.wall,
                note=f"{child['overlays']} TextClips, ffmpeg {child['ffmpeg']}; time from first clip load to"
                     " written file (interpreter and imports excluded)"),
            Row("A first compose", "  MoviePy CPU seconds (its whole process tree)", movie.cpu, "s",
                baseline_label="floor's CPU seconds", baseline=floor.cpu,
                note="includes the child's interpreter start and imports (about a second)"),
            Row("A first compose", "  our first compose vs MoviePy", first.spent.wall, "s",
                baseline_label="MoviePy", baseline=movie.wall),
            Row("C peak RSS", "  MoviePy, same composition (its process tree)", round(movie_rss / MB), "MB",
                baseline_label=f"ours, {s.seconds:g} s", baseline=round(first.peak_rss / MB),
                note=f"the child before importing MoviePy: {child['rss_at_start'] / MB:.0f} MB"),
        ]

    if s.long_scenes:
        long_seconds = s.long_scenes * s.scene_seconds
        step(f"peak RSS at {long_seconds:g} s: {s.long_scenes} scenes (the {s.scenes} clips reused) ...")
        long_inputs = make_inputs(s, inputs_dir / "long", clips, s.long_scenes)
        with open_engine(scratch.folder("home-long")) as engine:
            long = run_compose(engine, s, long_inputs, scratch.root)
        step(f"floor at {long_seconds:g} s ...")
        long_floor = encode_floor(s, [scene.clip for scene in long_inputs.scenes], scratch.folder("floor-long"))
        rows += [
            Row("C peak RSS", f"{long_seconds:g} s compose ({s.long_scenes} scenes)", round(long.peak_rss / MB), "MB",
                target=1000.0, baseline_label=f"{s.seconds:g} s compose", baseline=round(first.peak_rss / MB)),
            Row("C peak RSS", f"  ratio {long_seconds:g} s / {s.seconds:g} s", long.peak_rss / first.peak_rss, "",
                target=1.10, note=f"'flat' read as at most 10% growth for {long_seconds / s.seconds:g}x the video"),
            Row("D long compose", f"{long_seconds:g} s, {s.long_scenes} scenes: engine run, fresh cache",
                long.spent.wall, "s", baseline_label=f"floor: 1 ffmpeg encode of the {s.long_scenes} clips",
                baseline=long_floor.wall),
            Row("D long compose", cpu_label, long.spent.cpu, "s", baseline_label="floor's CPU seconds",
                baseline=long_floor.cpu),
            Row("D long compose", f"  floor at {long_seconds:g} s", long_floor.wall, "s",
                baseline_label=f"{long_seconds / s.seconds:g} x the {s.seconds:g} s floor",
                baseline=floor.wall * long_seconds / s.seconds),
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: 540x960, 6 x 2 s, no MoviePy, no 120 s run")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--workers", type=int, help="engine workers (default: what `reelgraph run` uses)")
    parser.add_argument("--preset", choices=("fast", "balanced", "quality"), help="encoder preset for all three")
    parser.add_argument("--no-moviepy", action="store_true", help="skip the MoviePy comparison")
    parser.add_argument("--no-long", action="store_true", help="skip the 120 s run (C flatness, D)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (inputs and outputs) to look at")
    parser.add_argument("--moviepy-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.moviepy_child:
        return moviepy_child(args.moviepy_child)
    settings = QUICK if args.quick else FULL
    if args.workers is not None:
        settings = replace(settings, workers=max(1, args.workers))
    if args.preset:
        settings = replace(settings, preset=args.preset)
    if args.no_moviepy:
        settings = replace(settings, moviepy=False)
    if args.no_long:
        settings = replace(settings, long_scenes=0)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    scratch = Scratch()
    rows: list[Row] = []
    try:
        bench(settings, scratch, rows)
    except Exception as exc:  # noqa: BLE001 - report what ran, and the failure
        traceback.print_exc()
        rows.append(Row("compose", "could not run", None, "", error=f"{type(exc).__name__}: {exc}"))
    finally:
        if args.keep:
            step(f"kept {scratch.root}")
        else:
            scratch.close()
    elapsed = time.perf_counter() - started
    info = environment() | {"load avg (1 min) before/after": f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"}
    rows.sort(key=lambda row: row.bench.split()[0])
    title = (f"reelgraph compose benchmark ({settings.mode} mode, {settings.width}x{settings.height}@{settings.fps},"
             f" preset {settings.preset!r}, workers={settings.workers})")
    print(report(rows, settings, info, elapsed, title))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {"mode": settings.mode, "settings": asdict(settings), "environment": info,
                    "seconds": round(elapsed, 3), "results": [row.to_json() for row in rows]}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 1 if any(row.error for row in rows) else 0


def report(rows: list[Row], settings: Any, info: Mapping[str, Any], seconds: float, title: str) -> str:
    """run_benchmarks' table under another title (``settings`` needs mode, workers and seed)."""
    text = render(rows, settings, info, seconds).splitlines()
    text[0] = title
    return "\n".join(text).replace(", except 'work saved' where >= 1 is.", ".")


if __name__ == "__main__":
    sys.exit(main())
