"""Spoken-form normalisation: display text -> text a TTS engine reads aloud, with a map back.

Display words are the whitespace-separated tokens of the scene text, exactly as written. Each
one gets a spoken form ("3" -> "three", "$5" -> "five dollars", "—" -> ","); the spoken forms
are joined into one spoken text, and ``SpokenText.spans`` says which characters of it belong to
which display word. Providers report timings against spoken-text characters; ``display_times``
folds them back onto display words, so timings always carry the DISPLAY text.

English only: the offline voice and the providers' defaults are English.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
_DENOMINATORS = {2: ("half", "halves"), 4: ("quarter", "quarters")}

_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "", "")}
# Units are read out only after a number ("5 min" -> "five minutes"); alone they may be words.
_UNITS = {
    "min": ("minute", "minutes"), "mins": ("minute", "minutes"), "h": ("hour", "hours"),
    "hr": ("hour", "hours"), "hrs": ("hour", "hours"), "s": ("second", "seconds"),
    "sec": ("second", "seconds"), "secs": ("second", "seconds"), "ms": ("millisecond", "milliseconds"),
    "g": ("gram", "grams"), "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"),
    "ml": ("millilitre", "millilitres"), "l": ("litre", "litres"), "cl": ("centilitre", "centilitres"),
    "oz": ("ounce", "ounces"), "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"),
    "tsp": ("teaspoon", "teaspoons"), "tbsp": ("tablespoon", "tablespoons"), "cm": ("centimetre", "centimetres"),
    "mm": ("millimetre", "millimetres"), "m": ("metre", "metres"), "km": ("kilometre", "kilometres"),
    "kmh": ("kilometre per hour", "kilometres per hour"), "mph": ("mile per hour", "miles per hour"),
    "kb": ("kilobyte", "kilobytes"), "mb": ("megabyte", "megabytes"), "gb": ("gigabyte", "gigabytes"),
    "x": ("time", "times"), "k": ("thousand", "thousand"),
}
# Abbreviations read the same wherever they stand (lower-cased, with their dots).
_ABBREVIATIONS = {
    "dr.": "doctor", "mr.": "mister", "mrs.": "missus", "ms.": "miz", "prof.": "professor",
    "vs.": "versus", "vs": "versus", "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera",
    "approx.": "approximately", "no.": "number", "jr.": "junior", "sr.": "senior", "w/": "with",
    "w/o": "without",
}
_SYMBOLS = {"&": "and", "+": "plus", "=": "equals", "@": "at", "%": "percent", "#": "number", "×": "times",
            "°": "degrees", "~": "about", "/": "or"}
_PAUSES = frozenset({"—", "–", "-", "--", "...", "…", "|", "•", "·"})

_LEAD = "\"'“‘«‹([{¿¡*_"
_TRAIL = "\"'”’»›)]}.,!?;:…*_"
_NUMBER = r"[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-−]?\d+(?:\.\d+)?|[-−]?\.\d+"
_RE_NUMBER = re.compile(rf"^(?:{_NUMBER})$")
_RE_CURRENCY = re.compile(rf"^([$€£¥])({_NUMBER})([kKmMbB]|bn)?$")
_RE_NUMBER_SUFFIX = re.compile(rf"^({_NUMBER})(%|°[CcFf]?|[A-Za-z]+)$")
_RE_ORDINAL = re.compile(r"^(\d+)(st|nd|rd|th)$", re.IGNORECASE)
_RE_TIME = re.compile(r"^(\d{1,2}):(\d{2})(am|pm|a\.m\.|p\.m\.)?$", re.IGNORECASE)
_RE_FRACTION = re.compile(r"^(\d+)/(\d+)$")
_RE_RANGE = re.compile(rf"^({_NUMBER})[-–—]({_NUMBER})$")
_RE_INNER_SYMBOL = re.compile(r"[&+=@×]")


@dataclass(frozen=True)
class SpokenText:
    """Display words, the spoken text, and for each display word its [start, end) in the spoken text."""

    display: tuple[str, ...]
    text: str
    spans: tuple[tuple[int, int], ...]

    def display_times(self, timed_chars: Iterable[tuple[int, int, float, float]]) -> list[tuple[float, float] | None]:
        """Fold (char_start, char_end, t_start, t_end) intervals over the spoken text onto display words.

        A display word gets the union of the intervals that overlap its span; a word with no
        speech (an emoji, a dash) gets None.
        """
        times: list[tuple[float, float] | None] = [None] * len(self.display)
        for char_start, char_end, t_start, t_end in timed_chars:
            for index, (start, end) in enumerate(self.spans):
                if start < max(char_end, char_start + 1) and char_start < end:
                    known = times[index]
                    times[index] = (t_start, t_end) if known is None else (min(known[0], t_start), max(known[1], t_end))
        return times


def spoken_form(display_text: str) -> SpokenText:
    """Normalise a scene's display text into spoken text, keeping the map back to display words."""
    display = tuple(display_text.split())
    parts: list[str] = []
    previous_core = ""
    for token in display:
        spoken, previous_core = _speak_token(token, previous_core)
        parts.append(spoken)
    text = ""
    spans: list[tuple[int, int]] = []
    for part in parts:
        if text and part:
            text += " "
        spans.append((len(text), len(text) + len(part)))
        text += part
    return SpokenText(display, text, tuple(spans))


def _speak_token(token: str, previous_core: str) -> tuple[str, str]:
    """Spoken form of one display token, and its core (for units that follow a number)."""
    abbreviation = _ABBREVIATIONS.get(token.rstrip(",;:!?").lower())
    if abbreviation is not None:  # "etc." keeps its dot as the sentence end it usually is
        tail = token[len(token.rstrip(",;:!?")):]
        return abbreviation + ("." if token.lower().startswith("etc.") else "") + tail, token
    core = token.lstrip(_LEAD)
    lead = token[: len(token) - len(core)]
    stripped = core.rstrip(_TRAIL)
    trail = core[len(stripped):]
    core = stripped  # "3.5." -> "3.5": only trailing punctuation goes, so decimals stay whole
    if not core:
        return ("," if token in _PAUSES or lead + trail in _PAUSES else ""), ""
    if core in _PAUSES:
        return ",", ""
    unit = _UNITS.get(core.lower()) if _is_count(previous_core) else None
    if unit is not None:
        spoken = unit[0] if _count_value(previous_core) == 1 else unit[1]
    else:
        spoken = _speak_core(core)
    if not any(ch.isalnum() for ch in spoken):
        return ("," if spoken.strip() in _PAUSES else ""), core
    # Quotes and brackets add nothing to speech; sentence punctuation shapes the prosody.
    return spoken + "".join(ch for ch in trail if ch in ".,!?;:…"), core


def _speak_core(core: str) -> str:
    if core in _SYMBOLS:
        return _SYMBOLS[core]
    if match := _RE_CURRENCY.match(core):
        return _currency(match.group(1), match.group(2), match.group(3))
    if match := _RE_ORDINAL.match(core):
        return ordinal_words(int(match.group(1)))
    if match := _RE_TIME.match(core):
        return _time(int(match.group(1)), int(match.group(2)), match.group(3))
    if match := _RE_FRACTION.match(core):
        return _fraction(int(match.group(1)), int(match.group(2)))
    if match := _RE_RANGE.match(core):
        return f"{number_words(match.group(1))} to {number_words(match.group(2))}"
    if _RE_NUMBER.match(core):
        return number_words(core, year_style=True)
    if match := _RE_NUMBER_SUFFIX.match(core):
        return _number_with_suffix(match.group(1), match.group(2))
    if core.startswith("#") and len(core) > 1 and core[1:].isalnum():
        return ("number " if core[1:].isdigit() else "hashtag ") + _speak_core(core[1:])
    if _RE_INNER_SYMBOL.search(core) and any(ch.isalnum() for ch in core):
        return " ".join(_speak_core(piece) for piece in re.split(r"([&+=@×])", core) if piece)
    return core


def _is_count(core: str) -> bool:
    return bool(_RE_NUMBER.match(core) or _RE_FRACTION.match(core) or _RE_RANGE.match(core))


def _count_value(core: str) -> float | None:
    try:
        return float(core.replace(",", "").replace("−", "-"))
    except ValueError:
        return None


def _number_with_suffix(number: str, suffix: str) -> str:
    if suffix == "%":
        return f"{number_words(number)} percent"
    if suffix.startswith("°"):
        scale = {"c": " Celsius", "f": " Fahrenheit"}.get(suffix[1:].lower(), "")
        return f"{number_words(number)} degrees{scale}"
    unit = _UNITS.get(suffix.lower())
    if unit is None:
        return f"{number_words(number)} {suffix}"
    return f"{number_words(number)} {unit[0] if _count_value(number) == 1 else unit[1]}"


def _currency(symbol: str, amount: str, magnitude: str | None) -> str:
    one, many, sub_one, sub_many = _CURRENCY[symbol]
    if magnitude:
        scale = {"k": "thousand", "m": "million", "b": "billion", "bn": "billion"}[magnitude.lower()]
        return f"{number_words(amount)} {scale} {many}"
    whole, _, cents = amount.replace(",", "").partition(".")
    words = f"{number_words(whole)} {one if whole.lstrip('-−') == '1' else many}"
    if cents and sub_one and len(cents) == 2 and int(cents):
        words += f" and {cardinal(int(cents))} {sub_one if cents == '01' else sub_many}"
    elif cents and int(cents):
        return f"{number_words(amount)} {many}"
    return words


def _time(hours: int, minutes: int, meridiem: str | None) -> str:
    if minutes == 0:
        words = f"{cardinal(hours)}" + ("" if meridiem else " o'clock")
    elif minutes < 10:
        words = f"{cardinal(hours)} oh {cardinal(minutes)}"
    else:
        words = f"{cardinal(hours)} {cardinal(minutes)}"
    if meridiem:
        words += " a m" if meridiem.lower().startswith("a") else " p m"
    return words


def _fraction(numerator: int, denominator: int) -> str:
    if denominator == 0:
        return f"{cardinal(numerator)} slash zero"
    if denominator == 1:
        return cardinal(numerator)
    one, many = _DENOMINATORS.get(denominator, (ordinal_words(denominator), ordinal_words(denominator) + "s"))
    return f"{cardinal(numerator)} {one if numerator == 1 else many}"


def cardinal(n: int) -> str:
    """English words for a whole number: 2026 -> 'two thousand twenty-six'."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + cardinal(n % 100))
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))
    for scale, name in _SCALES:
        if n >= scale:
            rest = n % scale
            return cardinal(n // scale) + " " + name + ("" if rest == 0 else " " + cardinal(rest))
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    words = cardinal(n)
    head, sep, last = words.rpartition(" ") if "-" not in words.rsplit(" ", 1)[-1] else words.rpartition("-")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_words(n: int) -> str:
    """1999 -> 'nineteen ninety-nine', 2026 -> 'twenty twenty-six', 2005 -> 'two thousand five'."""
    high, low = divmod(n, 100)
    if n % 1000 == 0 or 2000 <= n < 2010:
        return cardinal(n)
    if low == 0:
        return cardinal(high) + " hundred"
    return cardinal(high) + (" oh " if low < 10 else " ") + cardinal(low)


def number_words(text: str, year_style: bool = False) -> str:
    """Words for a written number: '1,250' -> 'one thousand two hundred fifty', '3.14' -> 'three point one four'."""
    text = text.replace("−", "-")
    sign = "minus " if text.startswith("-") else ""
    digits = text.lstrip("-")
    whole, _, fraction = digits.partition(".")
    plain = whole.replace(",", "")
    value = int(plain) if plain else 0
    if year_style and not sign and not fraction and "," not in whole and len(whole) == 4 and 1100 <= value < 2100:
        words = year_words(value)
    elif len(plain) > 1 and plain.startswith("0"):  # codes like "007" are read digit by digit
        words = " ".join(_ONES[int(d)] for d in plain)
    else:
        words = cardinal(value)
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    return sign + words
