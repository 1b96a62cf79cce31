"""ComfyUI backend: workflow fragments, compiler, client and managed instances.

Not built yet. Recipes already carry ComfyUI nodes (``comfy:<class_type>``, imported from API-format
workflows by ``reelgraph import``); the engine reports them as needing a ComfyUI backend.
"""
