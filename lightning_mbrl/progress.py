"""Progress of the long phases of a run (model pretraining, model fits, evaluations, videos), reported
by the code that runs them and shown by whoever listens. Pure Python, no Lightning.

Code that runs a phase says so, and ticks once per unit of work::

    with progress.phase("model pretraining", total=10_000, unit="steps") as tick:
        for _ in range(10_000):
            model_step()
            tick()

Nothing listens by default (and on every rank but 0): ``phase`` then yields a no-op ``tick``.
``callbacks.FrameProgressBar`` installs itself as the :class:`ProgressSink` for the duration of a
fit and shows the phase as a second bar under the frame bar. A tick costs one clock read; the sink
hears of it at most every ``sink.interval`` seconds.

:class:`RateMeter` is the rate and ETA both bars show: the count's growth over the last
``window_s`` seconds (a sliding window), not the average since the start, so a run whose speed
changes (random warm-up frames, then model-based updates) gets an ETA from its current speed.
"""

from __future__ import annotations

import collections
import contextlib
import time
from typing import Callable, Iterator, Protocol

Clock = Callable[[], float]


class Phase:
    """One running phase: ``count`` of ``total`` (``None``: unknown) ``unit``s done since ``started_at``."""

    def __init__(self, name: str, total: int | None, unit: str, sink: "ProgressSink", clock: Clock) -> None:
        self.name, self.total, self.unit = name, total, unit
        self.count = 0
        self.clock = clock
        self.started_at = clock()
        self._sink = sink
        self._next_report = self.started_at + sink.interval

    def tick(self, n: int = 1) -> None:
        """``n`` more units done; the sink hears of it at most every ``sink.interval`` seconds."""
        self.count += n
        now = self.clock()
        if now >= self._next_report:
            self._next_report = now + self._sink.interval
            self._sink.phase_advanced(self)


class ProgressSink(Protocol):
    """What ``phase`` reports to (``callbacks.FrameProgressBar``)."""

    interval: float  # seconds between two ``phase_advanced`` calls of one phase

    def phase_started(self, phase: Phase) -> None: ...

    def phase_advanced(self, phase: Phase) -> None: ...

    def phase_ended(self, phase: Phase) -> None: ...


def _no_tick(n: int = 1) -> None:
    return None


_sink: ProgressSink | None = None
_clock: Clock = time.monotonic


def install(sink: ProgressSink, clock: Clock = time.monotonic) -> None:
    """Make ``sink`` hear of every phase from now on (one sink per process; the last one wins)."""
    global _sink, _clock
    _sink, _clock = sink, clock


def uninstall(sink: ProgressSink) -> None:
    """Stop reporting to ``sink`` (if it is the installed one)."""
    global _sink, _clock
    if _sink is sink:
        _sink, _clock = None, time.monotonic


@contextlib.contextmanager
def phase(name: str, total: int | None = None, unit: str = "it") -> Iterator[Callable[..., None]]:
    """Report a phase of ``total`` ``unit``s (``None``: unknown) to the installed sink; yields
    ``tick(n=1)``. A no-op without a sink."""
    sink = _sink
    if sink is None:
        yield _no_tick
        return
    running = Phase(name, total, unit, sink, _clock)
    sink.phase_started(running)
    try:
        yield running.tick
    finally:
        sink.phase_ended(running)


class RateMeter:
    """Rate of a growing count over a sliding window of the last ``window_s`` seconds.

    ``update(count)`` records a sample; ``rate()`` is ``(count_now - count_then) / (t_now - t_then)``
    where "then" is the newest sample at least ``window_s`` old (the oldest one while the run is
    younger than the window). ``eta(remaining)`` is ``remaining / rate()``.
    """

    def __init__(self, window_s: float = 300.0, clock: Clock = time.monotonic) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.window_s = window_s
        self.clock = clock
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def update(self, count: float) -> None:
        now = self.clock()
        self._samples.append((now, count))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Units per second over the window; ``None`` before two samples at different times."""
        if len(self._samples) < 2:
            return None
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None

    def eta(self, remaining: float) -> float | None:
        """Seconds until ``remaining`` more units at the current rate (``None``: unknown)."""
        rate = self.rate()
        if remaining <= 0:
            return 0.0
        return remaining / rate if rate else None


def format_duration(seconds: float | None) -> str:
    """``3:21:00`` (h:mm:ss) or ``2:05`` (m:ss); ``?`` for an unknown duration."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(rate: float | None, unit: str) -> str:
    """``31 frames/s``, ``2.4 steps/s``, ``0.35 epochs/s``; ``? frames/s`` while unknown."""
    if rate is None:
        return f"? {unit}/s"
    if rate >= 100:
        return f"{rate:,.0f} {unit}/s"
    return f"{rate:.1f} {unit}/s" if rate >= 10 else f"{rate:.2f} {unit}/s"


def rate_and_eta(meter: RateMeter, count: float, total: float | None, unit: str) -> str:
    """``31 frames/s, ETA 3:21:00`` (no ETA for an unknown total)."""
    text = format_rate(meter.rate(), unit)
    if total is None:
        return text
    return f"{text}, ETA {format_duration(meter.eta(total - count))}"
