"""Provisioning a ComfyUI checkout from ``manifest.toml``: ComfyUI and custom-node packs at pinned
commits (git), their Python requirements (pip, in the instance's interpreter), and model files
(downloaded with resume, then checked against the manifest's size and sha256, or, for a file the
manifest does not pin, against the size and sha256 its server publishes, as Hugging Face does).

:func:`plan` only looks at the disk and says what :func:`provision` would do (``--dry-run``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

MANIFEST = Path(__file__).resolve().parent / "manifest.toml"
CHUNK = 1 << 20
Log = Callable[[str], None]


class ProvisionError(Exception):
    """A step failed; the message names the step and the cause."""


@dataclass(frozen=True)
class Repo:
    name: str
    repo: str
    commit: str
    dir: str  # relative to the ComfyUI checkout ("." for ComfyUI itself)
    requirements: str = ""
    ref: str = ""


@dataclass(frozen=True)
class ModelFile:
    file: str
    dir: str  # relative to the ComfyUI checkout
    url: str
    size: int
    sha256: str
    groups: tuple[str, ...]

    @property
    def relative(self) -> str:
        return f"{self.dir}/{self.file}"

    @property
    def verified(self) -> bool:
        """Whether a download of it is checked: the manifest has both its size and its sha256."""
        return bool(self.size and self.sha256)


def unpinned_note(models: Sequence[ModelFile]) -> str:
    """One plain sentence naming the files the manifest does not pin ('' if none)."""
    names = [m.file for m in models if not m.verified]
    if not names:
        return ""
    return (f"not pinned (the manifest has no size and sha256 for them): {', '.join(names)}; "
            "provision checks them against the size and sha256 their server publishes, or warns")


@dataclass(frozen=True)
class Published:
    """What a server publishes about a file before sending it."""

    size: int
    sha256: str


SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def published_checksum(url: str, timeout: float = 30.0) -> Published | None:
    """The size and sha256 the server publishes for ``url``, or None. Hugging Face answers a HEAD
    on a ``resolve`` URL, before redirecting to its CDN, with ``X-Linked-Size`` and
    ``X-Linked-Etag``: the Git LFS object's size and id, which is the file's sha256 (a non-LFS file
    has a 40-digit Git blob id there, which is no sha256 of the file, and is not used)."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    headers = {"Accept-Encoding": "identity", **_auth(url)}
    try:
        response = requests.head(url, headers=headers, allow_redirects=False, timeout=timeout)
    except requests.RequestException:
        return None
    etag = (response.headers.get("X-Linked-Etag") or "").removeprefix("W/").strip('"').lower()
    size = response.headers.get("X-Linked-Size") or ""
    if response.status_code >= 400 or not SHA256_HEX.fullmatch(etag) or not size.isdigit() or int(size) <= 0:
        return None
    return Published(int(size), etag)


def _auth(url: str) -> dict[str, str]:
    token = os.environ.get("HF_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token and urlsplit(url).hostname == "huggingface.co" else {}


@dataclass(frozen=True)
class Manifest:
    comfyui: Repo
    custom_nodes: tuple[Repo, ...]
    models: tuple[ModelFile, ...]

    def groups(self) -> list[str]:
        return sorted({g for m in self.models for g in m.groups})

    def for_file(self, name: str) -> ModelFile | None:
        return next((m for m in self.models if m.file == name), None)


def load_manifest(path: Path | None = None) -> Manifest:
    source = path or MANIFEST
    try:
        data = tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProvisionError(f"cannot read the manifest {source}: {exc}") from None
    try:
        core = data["comfyui"]
        comfyui = Repo("ComfyUI", core["repo"], core["commit"], ".", core.get("requirements", ""), core.get("ref", ""))
        packs = tuple(Repo(p["name"], p["repo"], p["commit"], f"custom_nodes/{p['name']}", p.get("requirements", ""))
                      for p in data.get("custom_nodes", []))
        models = tuple(ModelFile(m["file"], m["dir"], m["url"], int(m.get("size", 0)), str(m.get("sha256", "")).lower(),
                                 tuple(m.get("for", []))) for m in data.get("models", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProvisionError(f"the manifest {source} is missing or misspells {exc}") from None
    return Manifest(comfyui, packs, models)


def select_models(manifest: Manifest, names: Sequence[str], every: bool = False) -> list[ModelFile]:
    """Files for model groups (compiler model names, node aliases such as ``wan2.1``) or file names."""
    if every:
        return list(manifest.models)
    from .placement import I2V_ALIASES, STILL_ALIASES

    wanted: list[ModelFile] = []
    for name in names:
        group = I2V_ALIASES.get(name) or STILL_ALIASES.get(name) or name
        found = [m for m in manifest.models if group in m.groups or m.file == name]
        if not found:
            raise ProvisionError(f"--model {name!r}: no such model group or file in the manifest "
                                 f"(groups: {', '.join(manifest.groups())})")
        wanted += [m for m in found if m not in wanted]
    return wanted


@dataclass(frozen=True)
class Step:
    kind: str  # clone | checkout | pip | download | ok | warn
    what: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind:8} {self.what}" + (f": {self.detail}" if self.detail else "")


# ---------------------------------------------------------------------------------------------
# planning


def plan(manifest: Manifest, path: Path, models: Sequence[ModelFile], *, python: str, deps: bool = True) -> list[Step]:
    steps: list[Step] = []
    for repo in (manifest.comfyui, *manifest.custom_nodes):
        steps += _plan_repo(repo, path, python, deps)
    for model in models:
        steps.append(_plan_model(model, path))
    if note := unpinned_note(models):
        steps.append(Step("warn", "model files", note))
    return steps


def _git(args: Sequence[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=3600)
    except FileNotFoundError:
        raise ProvisionError("git is not installed") from None
    except subprocess.CalledProcessError as exc:
        raise ProvisionError(f"git {' '.join(args)} failed: {(exc.stderr or exc.stdout).strip()[-300:]}") from None
    return done.stdout.strip()


def _head(target: Path) -> str | None:
    if not (target / ".git").exists():
        return None
    try:
        return _git(["rev-parse", "HEAD"], cwd=target)
    except ProvisionError:
        return None


def _plan_repo(repo: Repo, path: Path, python: str, deps: bool) -> list[Step]:
    target = (path / repo.dir).resolve()
    pin = repo.commit + (f" ({repo.ref})" if repo.ref else "")
    steps: list[Step]
    if not target.exists() or (repo.dir == "." and not (target / "main.py").exists() and not any(target.iterdir())):
        steps = [Step("clone", repo.name, f"{repo.repo} into {target}, check out {pin}")]
    else:
        head = _head(target)
        if head is None:
            return [Step("warn", repo.name, f"{target} exists but is not a git checkout; left as it is")]
        if head.startswith(repo.commit):
            steps = [Step("ok", repo.name, f"at {pin}")]
        else:
            steps = [Step("checkout", repo.name, f"{pin} (now at {head[:8]})")]
    if deps and repo.requirements:
        steps.append(Step("pip", repo.name, f"{python} -m pip install -r {target / repo.requirements}"))
    return steps


def _plan_model(model: ModelFile, path: Path) -> Step:
    target = path / model.relative
    size = f"{model.size:,} bytes" if model.verified else "not pinned in the manifest"
    if target.is_file():
        if model.size and target.stat().st_size != model.size:
            return Step("download", model.relative, f"present with the wrong size; again from {model.url} ({size})")
        check = "sha256 checked when installing" if model.sha256 else "no sha256 in the manifest"
        return Step("ok", model.relative, f"present ({check})")
    partial = target.with_name(target.name + ".part")
    resume = f", resuming at {partial.stat().st_size:,} bytes" if partial.is_file() else ""
    return Step("download", model.relative, f"{model.url} ({size}{resume})")


# ---------------------------------------------------------------------------------------------
# doing it


def provision(manifest: Manifest, path: Path, models: Sequence[ModelFile], *, python: str, deps: bool = True,
              log: Log = print) -> list[Step]:
    """Install what the plan lists; returns the steps taken. Stops at the first failure."""
    path = path.resolve()
    done: list[Step] = []
    for repo in (manifest.comfyui, *manifest.custom_nodes):
        done += _install_repo(repo, path, python, deps, log)
    unchecked = []
    for model in models:
        step, checked = install_model(model, path, log)
        done.append(step)
        if not checked:
            unchecked.append(model.file)
    if unchecked:
        log(str(Step("warn", "model files", f"not checked (no size and sha256 in the manifest, none published by "
                                            f"their server): {', '.join(unchecked)}")))
    return done


def _install_repo(repo: Repo, path: Path, python: str, deps: bool, log: Log) -> list[Step]:
    steps = _plan_repo(repo, path, python, deps)
    target = (path / repo.dir).resolve()
    for step in steps:
        log(str(step))
        if step.kind == "clone":
            target.parent.mkdir(parents=True, exist_ok=True)
            _git(["clone", "--quiet", repo.repo, str(target)])
            _checkout(target, repo.commit)
        elif step.kind == "checkout":
            _git(["fetch", "--quiet", "--tags", "origin"], cwd=target)
            _checkout(target, repo.commit)
        elif step.kind == "pip":
            requirements = target / repo.requirements
            if not requirements.is_file():
                log(f"warn     {repo.name}: no {repo.requirements}; nothing to install")
                continue
            done = subprocess.run([python, "-m", "pip", "install", "-r", str(requirements)], capture_output=True,
                                  text=True, check=False)
            if done.returncode:
                raise ProvisionError(f"pip install -r {requirements} failed: {done.stderr.strip()[-400:]}")
    return steps


def _checkout(target: Path, commit: str) -> None:
    _git(["-c", "advice.detachedHead=false", "checkout", "--quiet", commit], cwd=target)


def install_model(model: ModelFile, path: Path, log: Log) -> tuple[Step, bool]:
    """Installs one file; returns the step and whether the file was checked against a sha256."""
    target = path / model.relative
    size, sha256 = model.size, model.sha256
    published = None if model.verified else published_checksum(model.url)
    if published is not None:
        size, sha256 = size or published.size, sha256 or published.sha256
    if target.is_file() and (not size or target.stat().st_size == size):
        if sha256 and file_sha256(target) != sha256:
            log(f"download {model.relative}: present but its sha256 differs; fetching again")
            target.unlink()
        else:
            step = Step("ok", model.relative, "present" + ("" if sha256 else " (not checked: no sha256 known)"))
            log(str(step))
            return step, bool(sha256)
    step = _plan_model(model, path)
    log(str(step))
    by = "the manifest" if model.verified or published is None else "its server"
    download(model.url, target, size=size, sha256=sha256, expected_by=by)
    if published is not None:
        # the server's word at download time, not a pin: print it so the manifest can pin it
        log(f"note     {model.relative}: checked against the size and sha256 its server publishes; to pin them "
            f"in the manifest: size = {published.size}, sha256 = \"{published.sha256}\"")
    elif not sha256:
        log(f"warn     {model.relative}: no sha256 in the manifest and none published; the download is not checked")
    return step, bool(sha256)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, target: Path, *, size: int = 0, sha256: str = "", timeout: float = 60.0,
             expected_by: str = "the manifest") -> None:
    """Fetch ``url`` to ``target`` through ``target.part``, resuming a partial file with an HTTP
    Range request (or a seek, for ``file://``); the size and sha256 are checked when known
    (``expected_by`` says whose they are, for the message)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.is_file() else 0
    if not (size and have == size):
        parts = urlsplit(url)
        if parts.scheme == "file":
            _copy_local(Path(unquote(parts.path)), partial, have)
        elif parts.scheme in ("http", "https"):
            _fetch(url, partial, have, timeout)
        else:
            raise ProvisionError(f"cannot download {url}: only http(s) and file URLs are supported")
    got = partial.stat().st_size
    if size and got != size:
        partial.unlink()
        raise ProvisionError(f"{url}: got {got:,} bytes, {expected_by} says {size:,}; the partial file was removed")
    if sha256 and (actual := file_sha256(partial)) != sha256.lower():
        partial.unlink()
        raise ProvisionError(f"{url}: sha256 {actual} does not match the one {expected_by} gives, {sha256}; the file was removed")
    partial.replace(target)


def _copy_local(source: Path, partial: Path, have: int) -> None:
    try:
        with source.open("rb") as src, partial.open("ab") as dst:
            src.seek(have)
            shutil.copyfileobj(src, dst, CHUNK)
    except OSError as exc:
        raise ProvisionError(f"cannot copy {source}: {exc.strerror or exc}") from None


def _fetch(url: str, partial: Path, have: int, timeout: float) -> None:
    headers = {**_auth(url), **({"Range": f"bytes={have}-"} if have else {})}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and have:  # nothing after what we have: already complete
                return
            if response.status_code not in (200, 206):
                raise ProvisionError(f"{url} answered HTTP {response.status_code}")
            mode = "ab" if response.status_code == 206 else "wb"  # 200: the server ignored Range
            with partial.open(mode) as handle:
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
    except requests.RequestException as exc:
        raise ProvisionError(f"downloading {url} failed ({type(exc).__name__}); run it again to resume") from None
