"""T1 smoke for ``callbacks.VideoEval``: tiny fits write GIF and MP4 episodes of the policy and of a
BOOTS planner to ``<run folder>/videos`` and an animated GIF to TensorBoard, never change training, and
bad arguments or a task that cannot render stop the run with a one-line error naming the field."""

import os
import subprocess
import sys

import imageio.v2 as imageio
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from callbacks import BootsEval, VideoEval
from callbacks.video import check_mp4_backend, use_headless_gl
from lightning_mbrl.errors import ConfigError
from tests.conftest import ROOT
from tests.smoke.test_planning_callbacks import POSITIONS, state_hash
from tests.smoke.test_recipes import fit, metrics_rows

STEPS = 20  # episode cap: 21 frames (reset + one per step); HalfCheetah never terminates early
VIDEO = ["--trainer.callbacks+=callbacks.VideoEval", "--trainer.callbacks.every_frames=100",
         "--trainer.callbacks.width=64", "--trainer.callbacks.height=64", "--trainer.callbacks.fps=20"]
BOOTS = ["--trainer.callbacks+=callbacks.BootsEval", "--trainer.callbacks.every_frames=100",
         "--trainer.callbacks.episodes=1", "--trainer.callbacks.horizon=2", "--trainer.callbacks.n_candidates=8",
         "--trainer.callbacks.n_elites=2", "--trainer.callbacks.n_iters=1", "--trainer.callbacks.own_model_steps=10"]


def video_callback(cli) -> VideoEval:
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, VideoEval)]
    return cb


def tensorboard_images(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    (events,) = run_dir.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={IMAGES: 0})
    accumulator.Reload()
    return accumulator.Images(tag)


def test_gif_videos_of_policy_and_boots(in_tmp):
    """BOOTS-SAC (own model) first, so at each video the planner's model is already fitted."""
    cli = fit("sac_halfcheetah", POSITIONS, f"--model.max_episode_steps={STEPS}", *BOOTS, *VIDEO,
              "--trainer.callbacks.format=gif")
    run_dir = in_tmp / "runs" / "sac_halfcheetah" / "version_0"
    assert video_callback(cli).calls == 2
    assert sorted(p.name for p in (run_dir / "videos").iterdir()) == [
        "boots_frames=100.gif", "boots_frames=200.gif", "policy_frames=100.gif", "policy_frames=200.gif"]
    rows = metrics_rows(cli)
    for label in ("policy", "boots"):
        lengths = [(int(float(r["step"])), float(r[f"video/{label}/length"])) for r in rows
                   if r.get(f"video/{label}/length")]
        assert lengths == [(100, STEPS), (200, STEPS)], label
        assert len([r for r in rows if r.get(f"video/{label}/return")]) == 2
        with Image.open(run_dir / "videos" / f"{label}_frames=200.gif") as gif:
            assert (gif.n_frames, gif.size, gif.info["duration"]) == (STEPS + 1, (64, 64), 50)
        images = tensorboard_images(run_dir, f"video/{label}")
        assert [(im.step, im.width, im.height) for im in images] == [(100, 64, 64), (200, 64, 64)]
        assert all(im.encoded_image_string.startswith(b"GIF8") for im in images)


def test_mp4_video_of_the_policy(in_tmp):
    cli = fit("sac_halfcheetah", f"--model.max_episode_steps={STEPS}", *VIDEO, "--trainer.callbacks.every_frames=200")
    run_dir = in_tmp / "runs" / "sac_halfcheetah" / "version_0"
    assert sorted(p.name for p in (run_dir / "videos").iterdir()) == ["policy_frames=200.mp4"]
    with imageio.get_reader(run_dir / "videos" / "policy_frames=200.mp4", format="FFMPEG") as reader:
        frames = [frame for frame in reader]  # not list(reader): the reader's length hint is inf
        assert (reader.count_frames(), reader.get_meta_data()["fps"]) == (STEPS + 1, 20)
    assert len(frames) == STEPS + 1 and frames[0].shape == (64, 64, 3)
    assert [im.step for im in tensorboard_images(run_dir, "video/policy")] == [200]  # TensorBoard gets a GIF too
    assert video_callback(cli).format == "mp4"


def test_videos_never_change_training(in_tmp):
    """Same fit (SAC with a BOOTS evaluator) with and without VideoEval: identical parameters,
    optimizer states, buffers, counters, global RNG state, and BOOTS returns."""
    from lightning_mbrl.algos.sac import SAC

    class Probe(pl.Callback):
        def on_train_end(self, trainer, module):  # before the module releases its replay buffer
            self.hash = state_hash(module, trainer)

    def run(with_video: bool):
        # As in a fresh process: BootsEval's own model is initialised (in its on_fit_start) from the
        # global RNG before the module seeds it, so without this the first fit of a process differs.
        torch.manual_seed(0)
        boots = BootsEval(every_frames=20, episodes=1, horizon=1, n_candidates=8, n_elites=2, n_iters=1,
                          own_model_steps=5)
        video = VideoEval(every_frames=20, width=32, height=32, format="gif")
        probe = Probe()
        model = SAC("HalfCheetah-v5", env_kwargs={"exclude_current_positions_from_observation": False},
                    max_frames=60, init_random_frames=30, batch_size=16, hidden=(8, 8), max_episode_steps=8)
        trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             callbacks=[boots, video, probe] if with_video else [boots, probe])
        trainer.fit(model)
        if with_video:
            assert video.calls == 3 and len(video.saved) == 6  # policy and boots at 20, 40, 60 frames
            assert all(path.exists() for path in video.saved)
        return probe.hash, boots.calls, boots.last_return

    assert run(with_video=True) == run(with_video=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"every_frames": -1}, "every_frames must be an integer >= 0"),
    ({"width": 0}, "width must be a positive integer"),
    ({"height": -64}, "height must be a positive integer"),
    ({"fps": 0}, "fps must be a positive integer"),
    ({"format": "avi"}, "format must be one of mp4, gif, got 'avi'"),
    ({"max_episode_steps": 0}, "max_episode_steps must be an integer >= 1 or null"),
])
def test_bad_arguments_name_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VideoEval(**kwargs)


def test_a_task_that_cannot_render_is_refused_at_fit_start(capsys, in_tmp):
    with pytest.raises(SystemExit) as exc:
        fit("dqn_pwl", "--trainer.callbacks=[]", *VIDEO)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "env 'pwl/semi-rand-0' cannot render" in err
    assert "VideoEval needs a MuJoCo (gymnasium) env with rgb_array rendering" in err


def test_an_unknown_camera_is_refused_at_fit_start(capsys, in_tmp):
    """MuJoCo itself would fall back to the free camera without a word."""
    with pytest.raises(SystemExit) as exc:
        fit("sac_halfcheetah", *VIDEO, "--trainer.callbacks.camera=nosuch")
    assert exc.value.code == 2
    assert "VideoEval camera for 'HalfCheetah-v5' must be one of 'track', -1, 0" in capsys.readouterr().err


def test_mp4_without_imageio_ffmpeg_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match="pip install imageio-ffmpeg, or use --trainer.callbacks.format gif"):
        check_mp4_backend()


def test_headless_default_is_egl(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL"):
        monkeypatch.delenv(var, raising=False)
    use_headless_gl()
    assert os.environ["MUJOCO_GL"] == "egl"
    monkeypatch.setenv("MUJOCO_GL", "osmesa")  # an explicit choice is kept
    use_headless_gl()
    assert os.environ["MUJOCO_GL"] == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")  # with a display, MuJoCo's own default (GLFW)
    use_headless_gl()
    assert "MUJOCO_GL" not in os.environ
    monkeypatch.delenv("DISPLAY")
    monkeypatch.setattr(sys, "platform", "darwin")  # elsewhere MuJoCo's own default (CGL, WGL) is left alone
    use_headless_gl()
    assert "MUJOCO_GL" not in os.environ


def test_renders_headless_without_mujoco_gl_set():
    """A fresh process with no MUJOCO_GL and no display: building the callback is enough for MuJoCo to render."""
    code = (
        "from callbacks.video import VideoEval\n"
        "from lightning_mbrl.envs import make_env\n"
        "VideoEval(width=32, height=24)\n"
        "env = make_env('InvertedPendulum-v5', render_mode='rgb_array', width=32, height=24)\n"
        "env.reset()\n"
        "frame = env.base_env._env.render()\n"
        "assert frame.shape == (24, 32, 3) and frame.any(), frame.shape\n"
    )
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    environ["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
