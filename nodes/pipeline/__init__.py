"""The video pipeline's node types: script, images, motion, voice, subtitles, music, compose, checks."""
