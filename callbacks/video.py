"""Videos of evaluation episodes: the deterministic policy, and BOOTS/MPC where their callbacks run.

Every ``every_frames`` real frames and at the end of training (``callbacks.evaluation.PeriodicEval``),
on global rank 0, ``VideoEval`` renders one episode of the deterministic (mean) policy with MuJoCo's
offscreen renderer and, with ``planners: true``, one episode of each ``BootsEval`` / ``MPCEval`` in
the trainer's callbacks (acting with that callback's planner, labelled by its ``name``). Each
episode is

- saved as ``<run folder>/videos/<label>_frames=<N>.mp4`` (or ``.gif``), the run folder being
  ``trainer.log_dir`` (``runs/<recipe>/version_N`` from the CLI) or ``trainer.default_root_dir``;
- shown in TensorBoard as an animated GIF under the Images tab, tag ``video/<label>`` at step = frames
  (when a ``TensorBoardLogger`` is among the loggers);
- summarised as ``video/<label>/return`` and ``video/<label>/length`` in every logger.

Headless rendering: without a display (no ``DISPLAY`` / ``WAYLAND_DISPLAY`` on Linux) the callback
sets ``MUJOCO_GL=egl`` unless ``MUJOCO_GL`` is already set. EGL renders offscreen on the CPU through
Mesa (llvmpipe) or on a GPU, needs no X server and no OSMesa; gymnasium reads the variable when an
env renders its first frame, so setting it when the callback is built is early enough. The default
(GLFW) needs a display and fails on a server.

MP4 needs the ``imageio-ffmpeg`` package (a dependency of this project); GIF is written with Pillow
and needs nothing else, but is larger and has a 256-colour palette per frame. The GIF encoder merges
identical consecutive frames into one longer frame, so a GIF of a motionless episode may hold fewer
frames than the episode (the MP4 always holds ``length + 1``: the reset frame and one per step).

It never changes training: episodes run under ``no_grad`` with the global RNG restored afterwards, in
the callback's own env (seeded ``rank_seed + EVAL_SEED_OFFSET`` and re-seeded before each episode, so
every video starts from the same state), and a planner's episode uses that planner's current model
and a generator seeded as in its own evaluation, without fitting anything. A planner without a world
model of its module fits its own model at its evaluations; until its first one it gets no video.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor
from torchrl.envs.libs.gym import GymWrapper
from torchrl.envs.utils import step_mdp

from callbacks.evaluation import EVAL_SEED_OFFSET, PeriodicEval
from callbacks.planning import PlannerEval
from callbacks.schedule import FrameSchedule
from lightning_mbrl import keys, progress
from lightning_mbrl.data.collection import ActorPolicy
from lightning_mbrl.errors import ConfigError
from lightning_mbrl.protocols import EnvMaker, Policy

VIDEO_FORMATS = ("mp4", "gif")


def use_headless_gl() -> None:
    """``MUJOCO_GL=egl`` when there is no display and ``MUJOCO_GL`` is unset (Linux only)."""
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless:
        os.environ.setdefault("MUJOCO_GL", "egl")


def check_mp4_backend() -> None:
    """ConfigError unless imageio can write MP4 (imageio-ffmpeg and its ffmpeg binary)."""
    try:
        import imageio.v2  # noqa: F401
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        raise ConfigError(
            f"VideoEval format 'mp4' needs imageio with the ffmpeg plugin ({err}): "
            f"pip install imageio-ffmpeg, or use --trainer.callbacks.format gif"
        ) from None


def encode_gif(frames: list[np.ndarray], fps: int) -> bytes:
    """Animated GIF (looping) of ``frames`` (``uint8 [H, W, 3]`` each), written by Pillow."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return buffer.getvalue()


def write_mp4(frames: list[np.ndarray], path: Path, fps: int) -> None:
    """H.264 MP4 (yuv420p, playable everywhere) through imageio's ffmpeg plugin; odd sizes are
    rounded up to even ones, as yuv420p needs."""
    import imageio.v2 as imageio

    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                            macro_block_size=2, ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(frame)


def tensorboard_gif(logger: TensorBoardLogger, tag: str, gif: bytes, height: int, width: int, step: int) -> None:
    """Add an animated GIF as an image summary (what ``SummaryWriter.add_video`` writes, without moviepy)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
    writer = logger.experiment
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
    writer.flush()


class VideoEval(PeriodicEval):
    """Every ``every_frames`` real frames and at the end of training (``0`` disables both), record one
    episode of the deterministic policy and, with ``planners``, one of each enabled ``BootsEval`` /
    ``MPCEval`` callback, as ``<run folder>/videos/<label>_frames=<N>.<format>`` and a TensorBoard
    GIF (tag ``video/<label>``); log ``video/<label>/return`` and ``video/<label>/length``.

    ``max_episode_steps``: episode cap (default: the task's time limit); ``width``, ``height``: frame
    size in pixels; ``fps``: playback rate; ``format``: ``mp4`` or ``gif``; ``camera``: a MuJoCo camera
    name or id (default: the env's tracking camera). Renders on global rank 0 only, with MuJoCo's
    offscreen ``rgb_array`` mode (so only gymnasium MuJoCo tasks); headless via ``MUJOCO_GL=egl``
    (see the module docstring).
    """

    def __init__(
        self,
        every_frames: int = 100_000,
        max_episode_steps: int | None = None,
        width: int = 256,
        height: int = 256,
        fps: int = 30,
        format: str = "mp4",
        planners: bool = True,
        camera: int | str | None = None,
    ) -> None:
        if not _is_int(every_frames) or every_frames < 0:
            raise ConfigError(f"VideoEval every_frames must be an integer >= 0 (0 disables), got {every_frames!r}")
        if max_episode_steps is not None and (not _is_int(max_episode_steps) or max_episode_steps < 1):
            raise ConfigError(f"VideoEval max_episode_steps must be an integer >= 1 or null, got {max_episode_steps!r}")
        for field, value in (("width", width), ("height", height), ("fps", fps)):
            if not _is_int(value) or value <= 0:
                raise ConfigError(f"VideoEval {field} must be a positive integer, got {value!r}")
        if format not in VIDEO_FORMATS:
            raise ConfigError(f"VideoEval format must be one of {', '.join(VIDEO_FORMATS)}, got {format!r}")
        self.schedule = FrameSchedule(every_frames)
        self.every_frames, self.max_episode_steps = every_frames, max_episode_steps
        self.width, self.height, self.fps, self.format = width, height, fps, format
        self.planners, self.camera = planners, camera
        self.calls = 0
        self.saved: list[Path] = []
        self._seed: int | None = None
        self._directory: Path | None = None
        self._env = None
        self._planner_callbacks: list[PlannerEval] = []
        use_headless_gl()

    # ------------------------------------------------------------------------------ lifecycle
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (isinstance(pl_module, Policy) and isinstance(pl_module, EnvMaker)):
            raise TypeError(f"VideoEval needs a module with act() and make_env(); got {type(pl_module).__name__}")
        if not self.every_frames:
            return
        if self.format == "mp4":
            check_mp4_backend()
        self._seed = pl_module.rank_seed + EVAL_SEED_OFFSET
        # trainer.log_dir is a broadcast under DDP: ask on every rank here, never on rank 0 alone later
        self._directory = Path(trainer.log_dir or trainer.default_root_dir) / "videos"
        # Every rank checks the env renders (so a bad config stops all of them); only rank 0 keeps it.
        env = self.make_env(pl_module)
        if trainer.is_global_zero:
            self._env = env
        else:
            env.close()
        self._planner_callbacks = [c for c in trainer.callbacks if isinstance(c, PlannerEval) and c.every_frames] \
            if self.planners else []
        self.schedule.start(pl_module.frames)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, at_end: bool) -> None:
        # Every rank advances the schedule; only rank 0 (the one holding an env) records. No collectives.
        if self._env is None:
            return
        self.calls += 1
        row: dict[str, float] = {}
        for label, make_act in self.actors(pl_module):
            frames, episode_return, length = self.record(pl_module, make_act, label)
            with progress.phase(f"video {label}: writing", 1, unit="files") as tick:
                self.publish(trainer, label, frames, pl_module.frames)
                tick()
            row[f"video/{label}/return"] = episode_return
            row[f"video/{label}/length"] = float(length)
        pl_module.log_to_loggers(row)

    # ------------------------------------------------------------------------------ recording
    def make_env(self, pl_module: pl.LightningModule):
        """A batch-less env of the module's task in ``rgb_array`` mode; ConfigError if it cannot render."""
        env_id = pl_module.env_id
        overrides: dict[str, Any] = {"render_mode": "rgb_array", "width": self.width, "height": self.height}
        if self.camera is not None:
            overrides["camera_id" if _is_int(self.camera) else "camera_name"] = self.camera
        needs = "VideoEval needs a MuJoCo (gymnasium) env with rgb_array rendering"
        with torch.random.fork_rng(devices=_devices(pl_module)):
            try:
                env = pl_module.make_env(num_envs=1, seed=self._seed, **overrides)
            except (ConfigError, TypeError) as err:
                raise ConfigError(f"env {env_id!r} cannot render: {needs} ({err})") from None
            if not isinstance(env.base_env, GymWrapper):
                env.close()
                raise ConfigError(f"env {env_id!r} cannot render: it is not a gymnasium env; {needs}")
            try:
                self.check_camera(env, env_id)
                env.reset()
                frame = self.render(env)
            except ConfigError:
                env.close()
                raise
            except Exception as err:  # noqa: BLE001 -- whatever the renderer raised, it cannot render
                env.close()
                raise ConfigError(f"env {env_id!r} cannot render ({type(err).__name__}: {err}); {needs} "
                                  f"(headless: MUJOCO_GL=egl)") from None
        if frame.shape != (self.height, self.width, 3):
            env.close()
            raise ConfigError(f"env {env_id!r} renders frames of shape {frame.shape}, not "
                              f"({self.height}, {self.width}, 3): {needs} that takes width and height")
        return env

    def check_camera(self, env, env_id: str) -> None:
        """MuJoCo would silently fall back to its free camera for an unknown camera name or id."""
        model = getattr(env.base_env._env.unwrapped, "model", None)
        if self.camera is None or model is None:
            return
        names = [model.camera(i).name for i in range(model.ncam)]
        if self.camera not in names and self.camera not in range(-1, model.ncam):
            allowed = ", ".join([*(repr(n) for n in names), *(str(i) for i in range(-1, model.ncam))])
            raise ConfigError(f"VideoEval camera for {env_id!r} must be one of {allowed} (-1: free camera), "
                              f"got {self.camera!r}")

    @staticmethod
    def render(env) -> np.ndarray:
        frame = env.base_env._env.render()  # the gymnasium env inside TorchRL's GymWrapper
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise ConfigError(f"render() returned {type(frame).__name__}, not an rgb_array frame")
        return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)

    def actors(self, pl_module: pl.LightningModule) -> list[tuple[str, Callable[[], Callable[[Tensor], Tensor]]]]:
        """``(label, make_act)`` for the policy and each planner that can act now."""
        def policy(obs: Tensor) -> Tensor:
            with self.precision_context():
                return pl_module.act(obs.to(pl_module.device), deterministic=True).cpu()

        actors = [("policy", lambda: policy)]
        for cb in self._planner_callbacks:
            if cb.own_model is not None and cb.own_model.seen == 0:
                rank_zero_warn(f"VideoEval: no video of {cb.name!r} at {pl_module.frames} frames: its own model "
                               f"is fitted at its first evaluation ({cb.every_frames} frames)")
                continue
            actors.append((cb.name, lambda cb=cb: cb.make_actor(pl_module, 1)))
        return actors

    def record(self, pl_module: pl.LightningModule, make_act: Callable[[], Callable[[Tensor], Tensor]],
               label: str = "policy") -> tuple[list[np.ndarray], float, int]:
        """One episode from the seeded start state: ``(frames, return, length)``, ``length + 1`` frames."""
        env = self._env
        max_steps = self.max_episode_steps or pl_module.spec.max_episode_steps or 1000
        with (torch.no_grad(), torch.random.fork_rng(devices=_devices(pl_module)),
              progress.phase(f"video {label}", max_steps, unit="steps") as tick):
            policy = ActorPolicy(make_act())
            env.set_seed(self._seed)
            td = env.reset()
            frames = [self.render(env)]
            episode_return, length = 0.0, 0
            for _ in range(max_steps):
                td = env.step(policy(td))
                frames.append(self.render(env))
                tick()
                episode_return = float(td.get(keys.NEXT_EPISODE_RETURN).sum())
                length = int(td.get((keys.NEXT, keys.STEP_COUNT)).sum())
                if bool(td.get(keys.DONE).any()):
                    break
                td = step_mdp(td)
        return frames, episode_return, length

    def publish(self, trainer: pl.Trainer, label: str, frames: list[np.ndarray], step: int) -> None:
        """Write the video file and, where TensorBoard logs, the GIF summary."""
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._directory / f"{label}_frames={step}.{self.format}"
        tensorboard = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        gif = encode_gif(frames, self.fps) if self.format == "gif" or tensorboard else b""
        if self.format == "gif":
            path.write_bytes(gif)
        else:
            write_mp4(frames, path, self.fps)
        self.saved.append(path)
        for logger in tensorboard:
            tensorboard_gif(logger, f"video/{label}", gif, frames[0].shape[0], frames[0].shape[1], step)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _devices(pl_module: pl.LightningModule) -> list:
    return [pl_module.device] if pl_module.device.type == "cuda" else []
