"""T0: progress reporting (``lightning_mbrl.progress``): the rate and ETA come from the recent rate
(sliding window) with a fake clock, phases tick to the installed sink at most every ``interval``
seconds and are no-ops without one, and the frame progress bar shows a phase as a second bar."""

import pytest
import torch

from callbacks.progress import FrameProgressBar
from callbacks.schedule import FrameSchedule
from lightning_mbrl import progress
from lightning_mbrl.models.ensemble import GaussianEnsemble
from lightning_mbrl.models.model_training import fit_ensemble, make_model_optimizer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_eta_follow_the_recent_rate_not_the_average_since_start():
    """The main job's shape: 10k random frames at 400 frames/s, a minute of model pretraining (no
    frames), then 30 frames/s. After ten minutes at 30 frames/s the ETA is the one at 30 frames/s."""
    clock = FakeClock()
    meter = progress.RateMeter(window_s=300.0, clock=clock)
    frames = 0
    meter.update(frames)
    for _ in range(25):  # random warm-up: 400 frames/s
        clock.now += 1.0
        frames += 400
        meter.update(frames)
    assert meter.rate() == pytest.approx(400.0)
    clock.now += 60.0  # model pretraining: no frames
    meter.update(frames)
    for _ in range(600):  # model-based training: 30 frames/s, sampled every second
        clock.now += 1.0
        frames += 30
        meter.update(frames)
    assert meter.rate() == pytest.approx(30.0)
    remaining = 400_000 - frames
    assert meter.eta(remaining) == pytest.approx(remaining / 30.0)
    assert frames / clock.now > 1.3 * meter.rate()  # the average since the start: an ETA a quarter too short
    assert progress.rate_and_eta(meter, frames, 400_000, "frames") == "30.0 frames/s, ETA 3:26:40"


def test_rate_meter_window_and_unknowns():
    clock = FakeClock()
    meter = progress.RateMeter(window_s=10.0, clock=clock)
    assert meter.rate() is None and meter.eta(5) is None  # no samples yet
    meter.update(0)
    assert meter.rate() is None
    clock.now = 5.0
    meter.update(50)
    assert meter.rate() == pytest.approx(10.0)  # younger than the window: since the first sample
    clock.now = 30.0
    meter.update(50)  # stalled for 25 s: the window [20, 30] holds no growth
    assert meter.rate() == pytest.approx(0.0) and meter.eta(10) is None
    assert meter.eta(0) == 0.0
    assert len(meter._samples) <= 3  # old samples are dropped
    with pytest.raises(ValueError):
        progress.RateMeter(window_s=0)


@pytest.mark.parametrize("seconds, text", [(None, "?"), (0, "0:00"), (59.6, "1:00"), (125, "2:05"),
                                           (12_060, "3:21:00"), (90_000, "25:00:00")])
def test_format_duration(seconds, text):
    assert progress.format_duration(seconds) == text


@pytest.mark.parametrize("rate, text", [(None, "? frames/s"), (1234.4, "1,234 frames/s"), (31.24, "31.2 frames/s"),
                                        (0.354, "0.35 frames/s")])
def test_format_rate(rate, text):
    assert progress.format_rate(rate, "frames") == text


class RecordingSink:
    interval = 1.0

    def __init__(self) -> None:
        self.events = []

    def phase_started(self, phase):
        self.events.append(("start", phase.name, phase.total, phase.count))

    def phase_advanced(self, phase):
        self.events.append(("advance", phase.name, phase.total, phase.count))

    def phase_ended(self, phase):
        self.events.append(("end", phase.name, phase.total, phase.count))


def test_phase_is_a_no_op_without_a_sink():
    assert progress._sink is None
    with progress.phase("model pretraining", 10) as tick:
        for _ in range(10):
            tick()
        tick(5)
    assert tick is progress._no_tick


def test_phases_tick_to_the_sink_at_most_every_interval():
    clock, sink = FakeClock(), RecordingSink()
    progress.install(sink, clock)
    try:
        with progress.phase("model pretraining", 100, unit="steps") as tick:
            for _ in range(40):  # 40 steps of 0.25 s: reported after 1 s, 2 s, ... of them
                clock.now += 0.25
                tick()
        with pytest.raises(RuntimeError), progress.phase("eval policy", None) as tick:  # ended on errors too
            tick(3)
            raise RuntimeError
    finally:
        progress.uninstall(sink)
    assert progress._sink is None
    advances = [e for e in sink.events if e[0] == "advance"]
    assert [e[3] for e in advances] == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    assert sink.events[0] == ("start", "model pretraining", 100, 0)
    assert ("end", "model pretraining", 100, 40) in sink.events
    assert sink.events[-2:] == [("start", "eval policy", None, 0), ("end", "eval policy", None, 3)]
    with progress.phase("after uninstall", 1) as tick:
        assert tick is progress._no_tick


def test_uninstall_leaves_another_sink_installed():
    first, second = RecordingSink(), RecordingSink()
    progress.install(first)
    progress.install(second)
    progress.uninstall(first)
    assert progress._sink is second
    progress.uninstall(second)
    assert progress._sink is None


def test_frame_progress_bar_shows_a_phase_as_its_own_bar(capsys):
    bar, clock = FrameProgressBar(refresh_seconds=0.5), FakeClock()
    progress.install(bar, clock)
    try:
        with progress.phase("model pretraining", 10, unit="steps") as tick:
            for _ in range(10):
                clock.now += 0.2
                tick()
    finally:
        bar.close()
    assert progress._sink is None and not bar._phases
    err = capsys.readouterr().err
    assert "model pretraining 0/10" in err
    assert "model pretraining 3/10" in err and "5.00 steps/s, ETA 0:01" in err


def test_fit_ensemble_calls_on_epoch_after_every_epoch():
    torch.manual_seed(0)
    model = GaussianEnsemble(3, 2, hidden=(8,), n_members=2, n_elites=1, weight_decays=(1e-4, 1e-4))
    epochs = []
    stats = fit_ensemble(model, torch.randn(40, 3), torch.randn(40, 2), make_model_optimizer(model), batch_size=16,
                         max_epochs=3, on_epoch=lambda: epochs.append(1))
    assert len(epochs) == int(stats["epochs"]) == 3


def test_frame_schedule_is_due_once_more_at_the_end_unless_it_just_was():
    short = FrameSchedule(1_000)  # longer than the run
    short.start(0)
    assert not short.due(200)
    assert short.due_at_end(200) and not short.due_at_end(200)
    divides = FrameSchedule(100)
    divides.start(0)
    assert divides.due(100) and divides.due(200)
    assert not divides.due_at_end(200)  # it ran at the final frame count already
    offset = FrameSchedule(60)
    offset.start(0)
    assert offset.due(60) and offset.due(120) and offset.due_at_end(150)
    disabled = FrameSchedule(0)
    assert not disabled.due(200) and not disabled.due_at_end(200)
