"""The schedule every periodic callback shares: something happens every N real env frames."""

from __future__ import annotations

from lightning_mbrl.errors import require_non_negative


class FrameSchedule:
    """Due once each time the module's frame counter reaches the next multiple of ``every_frames``
    (``0``: never), and once more at the end of training (``due_at_end``) unless it was due at that
    very frame count. ``start(frames)`` aligns the schedule at the beginning of a fit (or a resume)."""

    def __init__(self, every_frames: int, field: str = "every_frames") -> None:
        require_non_negative(field, every_frames)
        self.every_frames = every_frames
        self.next_at = every_frames
        self.last_at: int | None = None  # the frame count it was last due at

    def _after(self, frames: int) -> int:
        return (frames // self.every_frames + 1) * self.every_frames

    def start(self, frames: int) -> None:
        if self.every_frames:
            self.next_at = self._after(frames)

    def due(self, frames: int) -> bool:
        """True (and the next due frame count set) if ``frames`` reached the next multiple."""
        if not self.every_frames or frames < self.next_at:
            return False
        self.next_at = self._after(frames)
        self.last_at = frames
        return True

    def due_at_end(self, frames: int) -> bool:
        """True at the end of training (``frames``: the final count) unless disabled or already due at
        ``frames``: a run shorter than ``every_frames`` still gets one, and none is repeated."""
        if not self.every_frames or self.last_at == frames:
            return False
        self.last_at = frames
        return True
