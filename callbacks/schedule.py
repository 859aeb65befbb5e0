"""The schedule every periodic callback shares: something happens every N real env frames."""

from __future__ import annotations

from lightning_mbrl.errors import require_non_negative


class FrameSchedule:
    """Due once each time the module's frame counter reaches the next multiple of ``every_frames``
    (``0``: never). ``start(frames)`` aligns the schedule at the beginning of a fit (or a resume)."""

    def __init__(self, every_frames: int, field: str = "every_frames") -> None:
        require_non_negative(field, every_frames)
        self.every_frames = every_frames
        self.next_at = every_frames

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
        return True
