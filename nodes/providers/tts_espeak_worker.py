"""One espeak-ng synthesis in its own process (run by path: standard library only, no package imports).

Why a fresh process per synthesis: the espeak-ng library keeps global state between calls
(the pitch flutter and wave generator carry on), so a second synthesis of the same text in one
process differs by a few samples; a fresh process is byte-for-byte deterministic, runs in
parallel with others, and a crash in the C library cannot take the engine down.

stdin: JSON {"text", "voice", "rate_wpm"} or {"info": true}. stdout: one JSON line
{"rate", "byteorder", "events": [[type, text_position, length, audio_ms], ...]} or {"error": ...} or
{"version": ...}, then (after a synthesis) the raw 16-bit little-endian mono samples.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1
# Every parameter that shapes the output is set explicitly (rate comes from the request).
PARAMETERS = {"volume": (2, 100), "pitch": (3, 50), "range": (4, 50), "punctuation": (5, 0), "wordgap": (7, 0)}
PARAM_RATE = 1


class Event(ctypes.Structure):
    # espeak_EVENT from speak_lib.h
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds from the start of the output
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
    except OSError:
        out.write(json.dumps({"error": "missing"}).encode() + b"\n")
        return 0
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    if request.get("info"):
        out.write(json.dumps({"version": lib.espeak_Info(None).decode("utf-8", "replace")}).encode() + b"\n")
        return 0
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.c_void_p, ctypes.c_void_p,
    ]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 200, None, INITIALIZE_DONT_EXIT)
    if rate <= 0:
        out.write(json.dumps({"error": "initialise"}).encode() + b"\n")
        return 0
    samples = bytearray()
    events: list[list[int]] = []

    def collect(wav: ctypes._Pointer, count: int, event_list: ctypes._Pointer) -> int:
        if wav and count > 0:
            samples.extend(ctypes.string_at(wav, count * 2))
        index = 0
        while event_list[index].type != 0:  # espeakEVENT_LIST_TERMINATED
            event = event_list[index]
            events.append([event.type, event.text_position, event.length, event.audio_position])
            index += 1
        return 0

    callback = Callback(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(request["voice"].encode("utf-8")) != 0:
        out.write(json.dumps({"error": "voice"}).encode() + b"\n")
        return 0
    lib.espeak_SetParameter(PARAM_RATE, int(request["rate_wpm"]), 0)
    for parameter, value in PARAMETERS.values():
        lib.espeak_SetParameter(parameter, value, 0)
    text = request["text"].encode("utf-8") + b"\0"
    status = lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    lib.espeak_Synchronize()
    if status != 0:
        out.write(json.dumps({"error": f"synth {status}"}).encode() + b"\n")
        return 0
    out.write(json.dumps({"rate": rate, "events": events, "byteorder": sys.byteorder}).encode() + b"\n")
    out.write(bytes(samples))  # the library's native-endian int16
    return 0


if __name__ == "__main__":
    sys.exit(main())
