"""Checkpoint size against the amount of data: SAC on HalfCheetah-v5 with a 1M-transition replay
buffer (the recipe's capacity) after 10k and 20k collected frames.

    python -m benchmarks.checkpoint_size     # ~1 min; writes benchmarks/results/checkpoint_size.json

The checkpoint holds the filled part of the buffer only, so its size grows with the frames collected
(about 2 x 17 observation floats, 6 action floats and a few scalars per transition) and not with the
buffer's preallocated capacity (which would be ~220 MB for 1M transitions here).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytorch_lightning as pl

from benchmarks.common import write
from callbacks.checkpoint import FrameCheckpoint
from lightning_mbrl.algos.sac import SAC


def checkpoint_bytes(frames: int, directory: Path) -> int:
    module = SAC("HalfCheetah-v5", max_frames=frames + 1, init_random_frames=frames, buffer_size=1_000_000)
    checkpoint = FrameCheckpoint(every_frames=0, dirpath=str(directory))
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[checkpoint])
    trainer.fit(module)
    return (directory / "last.ckpt").stat().st_size


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in (10_000, 20_000):
            directory = Path(tmp) / str(frames)
            size = checkpoint_bytes(frames + 1, directory)
            rows.append({"transitions": frames + 1, "bytes": size})
            print(f"{frames + 1} transitions: {size / 1e6:.2f} MB ({size / (frames + 1):.0f} bytes per transition)")
    growth = (rows[1]["bytes"] - rows[0]["bytes"]) / (rows[1]["transitions"] - rows[0]["transitions"])
    fixed = rows[0]["bytes"] - growth * rows[0]["transitions"]
    print(f"bytes per extra transition {growth:.0f}; size at zero transitions {fixed / 1e6:.2f} MB (weights, optimizer states)")
    write("checkpoint_size", {"env": "HalfCheetah-v5", "buffer_capacity": 1_000_000, "rows": rows,
                              "bytes_per_transition": growth, "fixed_bytes": fixed})


if __name__ == "__main__":
    main()
