"""ComfyUI backend: node schemas and validation, workflow fragments and compiler, client, test server.

* ``schema`` — parse ``/object_info`` (both combo encodings) and apply ComfyUI's own prompt
  validation (``check_prompt`` gives the server's error JSON; ``validate_workflow`` plain messages).
* ``compiler`` + ``fragments/*.json`` — Wan 2.1/2.2, HunyuanVideo, SDXL/Flux stills, RIFE VFI or core
  FrameInterpolate, SaveVideo or VHS_VideoCombine, compiled and checked for one instance.
* ``errors`` — the backend's failures, and ComfyUI error payloads mapped back to recipe nodes.
* ``client`` — submit, follow (WebSocket, /history polling fallback), upload, download.
* ``testserver`` — a ComfyUI-protocol server with CPU stand-in nodes, for tests.
* ``pool`` — ComfyUI instances that node implementations run their workflows through (placement
  by model, queues kept full, priority, retries, cancellation); ``instances`` — managed ComfyUI
  processes (one per GPU, readiness, warm-up, restart on a crash); ``placement`` — the ComfyUI
  path of video.i2v / image.generate / video.interpolate (and their fusion into one prompt);
  ``keys`` — the ComfyUI and pack versions in their cache keys; ``ui_workflow`` — the UI-format
  workflow every prompt carries for ComfyUI's output metadata; ``provision`` + ``manifest.toml`` —
  pinned ComfyUI, custom nodes and model files; ``cli`` — ``reelgraph comfy up | doctor | provision``.

See README.md in this folder for how the pieces fit and what is not done yet.
"""
