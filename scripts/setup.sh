#!/usr/bin/env bash
# Installs what reelgraph needs on a fresh Debian machine, skipping what is already there:
#   apt: ffmpeg, espeak-ng (offline voice), DejaVu fonts (subtitles); with --tests also chromium
#        (the ComfyUI frontend screenshot test)
#   .venv: the package, editable; with --tests also its test extras, and the official workflow
#          templates of ComfyUI 0.26's era (the conformance target's set) under
#          .venv/template-sets/, beside the current release the extras pin.
set -euo pipefail
cd "$(dirname "$0")/.."

TESTS=0
if [ "${1:-}" = "--tests" ]; then TESTS=1; fi
PYTHON="${PYTHON:-python3}"

APT_PACKAGES=()
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then APT_PACKAGES+=(ffmpeg); fi
if ! command -v espeak-ng >/dev/null; then APT_PACKAGES+=(espeak-ng); fi
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then APT_PACKAGES+=(fonts-dejavu-core); fi
if [ "$TESTS" = 1 ] && ! command -v chromium >/dev/null; then APT_PACKAGES+=(chromium); fi
# Debian's own python3 ships venv/ensurepip separately
if [ ! -x .venv/bin/python ] && ! "$PYTHON" -c "import ensurepip, venv" 2>/dev/null; then APT_PACKAGES+=(python3-venv); fi
if [ "${#APT_PACKAGES[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "setup: installing ${APT_PACKAGES[*]} with apt-get" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
TARGET="."
if [ "$TESTS" = 1 ]; then TARGET=".[test]"; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$TARGET"
if [ "$TESTS" = 1 ]; then
    ERA_TEMPLATES=.venv/template-sets/comfyui-workflow-templates-json-0.1.0  # tests/test_comfy_templates.py
    if [ ! -d "$ERA_TEMPLATES/comfyui_workflow_templates_json" ]; then
        .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target "$ERA_TEMPLATES" \
            comfyui-workflow-templates-json==0.1.0
    fi
fi
