"""Word timings for audio from a provider that gives none, by aligning it to a reference synthesis.

Method (as in aeneas): synthesise the same known text offline with espeak-ng, whose word
timings are exact (tts_espeak), compute MFCC features of both recordings, find the cheapest
monotonic frame-to-frame path between them with dynamic time warping, and carry each reference
word's boundaries along the path into the provider's audio. Boundaries are then trimmed to the
sound they hold, dropping slivers of a neighbour's sound that an approximate boundary took in.
Nothing is transcribed: the text is known, only *where* it sounds is measured.

Chosen over synthesising word by word (exact but choppy speech, one request per word) and over
pure silence detection (fluent speech has no pause between most words).
"""

from __future__ import annotations

import numpy as np

from .tts_base import CharTiming, Speech, trimmed_timings

HOP_S = 0.010
_WINDOW_S = 0.025
_MELS = 40
_CEPSTRA = 13
_FMAX = 8000.0
_EDGE_FRAGMENT_S = 0.05  # sound this short at a carried boundary, past a pause, is the neighbour's
_MAX_CELLS = 4_000_000  # cost-matrix cells (32 MB of float64); longer inputs use a coarser hop


def mfcc(samples: np.ndarray, rate: int, hop_s: float = HOP_S) -> np.ndarray:
    """MFCCs (frames x 13), mean- and variance-normalised so two voices compare by shape."""
    signal = samples.astype(np.float64) / 32768.0
    signal = np.append(signal[0], signal[1:] - 0.97 * signal[:-1]) if signal.size else signal
    hop, window = max(1, round(rate * hop_s)), max(2, round(rate * _WINDOW_S))
    signal = np.pad(signal, (window // 2, window // 2 + hop))
    count = max(1, (len(signal) - window) // hop + 1)
    index = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    frames = signal[index] * np.hamming(window)
    nfft = 1 << (window - 1).bit_length()
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    fmax = min(_FMAX, rate / 2)
    mel_points = np.linspace(_hz_to_mel(0.0), _hz_to_mel(fmax), _MELS + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mel_points) / rate).astype(int)
    bank = np.zeros((_MELS, nfft // 2 + 1))
    for m in range(1, _MELS + 1):
        left, centre, right = bins[m - 1], bins[m], bins[m + 1]
        if centre > left:
            bank[m - 1, left:centre] = (np.arange(left, centre) - left) / (centre - left)
        if right > centre:
            bank[m - 1, centre:right] = (right - np.arange(centre, right)) / (right - centre)
    energies = np.log(power @ bank.T + 1e-10)
    k = np.arange(_MELS)
    dct = np.cos(np.pi / _MELS * (k[None, :] + 0.5) * np.arange(_CEPSTRA)[:, None])
    features = energies @ dct.T
    return (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-8)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def dtw_path(reference: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Monotonic alignment path of (reference frame, target frame) pairs, start to end."""
    ref_sq = (reference**2).sum(axis=1)[:, None]
    tgt_sq = (target**2).sum(axis=1)[None, :]
    cost = np.sqrt(np.maximum(ref_sq + tgt_sq - 2.0 * reference @ target.T, 0.0))
    n, m = cost.shape
    total = np.empty((n, m))
    # Row i from row i-1: the diagonal and vertical moves are vectorised; the horizontal moves
    # within the row are a running minimum: D[j] = S[j] + min_{k<=j}(T[k] - S[k]), S = cumsum(C[i]).
    running = np.cumsum(cost[0])
    total[0] = running
    for i in range(1, n):
        previous = total[i - 1]
        from_above = np.minimum(previous, np.concatenate(([np.inf], previous[:-1]))) + cost[i]
        running = np.cumsum(cost[i])
        total[i] = running + np.minimum.accumulate(from_above - running)
    path = [(n - 1, m - 1)]
    i, j = n - 1, m - 1
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            options = (total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])
            step = int(np.argmin(options))
            i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
        path.append((i, j))
    return np.array(path[::-1])


def align_to_reference(samples: np.ndarray, rate: int, reference: Speech) -> tuple[CharTiming, ...]:
    """Timings for ``samples`` (the same text as ``reference``), carried over from the reference's."""
    frames = (len(samples) / rate + reference.duration) / HOP_S
    hop = HOP_S * max(1.0, (frames * frames / 4 / _MAX_CELLS) ** 0.5)
    ref_features = mfcc(reference.samples, reference.rate, hop)
    tgt_features = mfcc(samples, rate, hop)
    path = dtw_path(ref_features, tgt_features)
    # For each reference frame, the first and last target frames it is matched with.
    first = np.full(len(ref_features), len(tgt_features) - 1)
    last = np.zeros(len(ref_features), dtype=int)
    np.minimum.at(first, path[:, 0], path[:, 1])
    np.maximum.at(last, path[:, 0], path[:, 1])
    duration = len(samples) / rate
    carried: list[CharTiming] = []
    for char_start, char_end, t_start, t_end in reference.timings:
        a = min(len(ref_features) - 1, int(t_start / hop))
        b = min(len(ref_features) - 1, max(a, int(np.ceil(t_end / hop)) - 1))
        start = min(duration, first[a] * hop)
        end = min(duration, (last[b] + 1) * hop)
        carried.append((char_start, char_end, start, max(start, end)))
    return trimmed_timings(samples, rate, carried, fragment=_EDGE_FRAGMENT_S)
