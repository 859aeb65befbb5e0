"""T1 smoke: the README's multi-node launch, run for real on this machine. Two torchrun "nodes" (one
process each, both on 127.0.0.1, gloo) train with Lightning's DDP strategy by trainer flags only:

    torchrun --nnodes 2 --nproc-per-node 1 --node-rank {0,1} --master-addr 127.0.0.1 --master-port P \
        -m recipes.<recipe> fit --trainer.num_nodes 2 --trainer.devices 1 --trainer.strategy ddp ...

Each rank is checked against the reference of what an update may touch (``check_routing``), and the
final parameters against a single-node run of 2 processes (``--trainer.devices 2``, test_ddp.py) with
the same flags: the launcher must not change the result. The two node processes share one working
directory (as nodes do on a shared file system): exactly one run folder and one checkpoint come out.
Each launch is bounded by a timeout (a hang kills both nodes and fails the test)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY
from tests.helpers import check_routing
from tests.smoke.test_ddp import CASES, DDP, dump_args, probe_args

RECIPES = ["sac_pendulum", "mbpo_invertedpendulum"]
TIMEOUT = 240  # seconds for all the processes of one test, which run at the same time
ENV = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}


def torchrun() -> list[str]:
    """The ``torchrun`` of this interpreter's environment (it is ``python -m torch.distributed.run``)."""
    script = Path(sys.executable).with_name("torchrun")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_command(recipe: str, node: int, port: int, *extra: str) -> list[str]:
    """The README's multi-node command for node ``node`` of 2, one process per node, master on this machine."""
    return [*torchrun(), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node),
            "--master-addr", "127.0.0.1", "--master-port", str(port),
            "-m", f"recipes.{recipe}", "fit", "--config", TINY, *CASES[recipe],
            "--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp",
            "--trainer.accelerator", "cpu", *extra]


def single_node_command(recipe: str, *extra: str) -> list[str]:
    """test_ddp.py's run: one node, 2 processes started by Lightning."""
    return [sys.executable, "-m", f"recipes.{recipe}", "fit", "--config", TINY, *CASES[recipe], *DDP, *extra]


def run_all(jobs: dict[str, tuple[list[str], Path]], logs: Path, timeout: int = TIMEOUT) -> dict[str, tuple[int, str]]:
    """Start every job (name: (command, cwd)) at once; return each one's exit code and output tail. Past
    ``timeout`` seconds (one deadline for all) every job still running is killed with the processes it
    started (each job has its own session) and the test fails."""
    logs.mkdir(parents=True, exist_ok=True)
    started = {}
    for name, (cmd, cwd) in jobs.items():
        with open(logs / f"{name}.log", "w") as log:
            started[name] = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **ENV}, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    tail = lambda name: (logs / f"{name}.log").read_text()[-3000:]  # noqa: E731
    try:
        for proc in started.values():
            proc.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        for proc in started.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        pytest.fail(f"still running after {timeout} s, killed:\n" + "\n---\n".join(
            f"{name}: {tail(name)}" for name, proc in started.items() if proc.returncode == -signal.SIGKILL))
    return {name: (proc.returncode, tail(name)) for name, proc in started.items()}


def assert_exit_0(results: dict[str, tuple[int, str]]) -> None:
    for name, (code, tail) in results.items():
        assert code == 0, f"{name} exited {code}:\n{tail}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_two_torchrun_nodes_train_as_one_node_of_two_processes(recipe, tmp_path):
    nodes, single = tmp_path / "nodes", tmp_path / "single"  # the working directories
    nodes.mkdir(), single.mkdir()
    callbacks = lambda d: [*dump_args(d), *probe_args(d)]  # noqa: E731
    port = free_port()
    # the single-node reference runs alongside the two nodes (their start-ups overlap: a shorter test)
    assert_exit_0(run_all({
        "node0": (node_command(recipe, 0, port, *callbacks(tmp_path / "dump")), nodes),
        "node1": (node_command(recipe, 1, port, *callbacks(tmp_path / "dump")), nodes),
        "single": (single_node_command(recipe, *callbacks(tmp_path / "single_dump")), single),
    }, tmp_path / "logs"))
    r0, r1 = (torch.load(tmp_path / "dump" / f"rank{r}.pt") for r in (0, 1))
    # (a) one world of 2 ranks over 2 nodes; each rank collected its own 200 frames (seed + rank * 1000)
    assert (r0["world_size"], r0["global_rank"], r0["node_rank"]) == (2, 0, 0)
    assert (r1["world_size"], r1["global_rank"], r1["node_rank"]) == (2, 1, 1)
    assert r0["frames"] == r1["frames"] == 200 and r0["updates"] == r1["updates"] > 0
    assert r0["observations"].shape == r1["observations"].shape == (200, r0["observations"].shape[1])
    assert not torch.equal(r0["observations"], r1["observations"])
    # (b) each rank against the reference of what an update may touch and how far Adam stepped
    for rank in (0, 1):
        check_routing(torch.load(tmp_path / "dump" / f"routing{rank}.pt"))
    # (c) the ranks agree, and agree with the single-node run of 2 processes: same data, same bits
    assert not [k for k in r0["state_dict"] if not torch.equal(r0["state_dict"][k], r1["state_dict"][k])]
    for rank, r in enumerate((r0, r1)):
        s = torch.load(tmp_path / "single_dump" / f"rank{rank}.pt")
        assert (s["world_size"], s["global_rank"], s["node_rank"]) == (2, rank, 0)
        assert (r["frames"], r["updates"]) == (s["frames"], s["updates"])
        assert torch.equal(r["observations"], s["observations"])
        assert r["state_dict"].keys() == s["state_dict"].keys()
        assert not [k for k in r["state_dict"] if not torch.equal(r["state_dict"][k], s["state_dict"][k])]

    # one run folder, chosen once: both nodes' loggers name it, and nothing else is written
    assert r0["logger_dirs"] == r1["logger_dirs"] and r0["logger_dirs"]
    assert {Path(d) for d in r0["logger_dirs"]} == {Path("runs", recipe, "version_0")}
    files = lambda root: sorted(  # noqa: E731
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "events.out" not in p.name)
    assert files(nodes) == files(single)  # config.yaml, hparams.yaml, metrics.csv, checkpoints/last.ckpt
    events = lambda root: [p.parent.relative_to(root) for p in root.rglob("events.out*")]  # noqa: E731
    assert events(nodes) == events(single) == [Path("runs", recipe, "version_0")]  # one TensorBoard file
    # one checkpoint (nothing half-written left behind), holding both ranks' replay buffers
    ckpts = [p.relative_to(nodes) for p in nodes.rglob("*ckpt*") if p.is_file()]
    assert ckpts == [Path("runs", recipe, "version_0", "checkpoints", "last.ckpt")], ckpts
    saved = torch.load(nodes / ckpts[0], weights_only=True)
    assert [s["replay"]["size"] for s in saved["rank_states"]] == [200, 200]
    for state, r in zip(saved["rank_states"], (r0, r1)):
        assert torch.equal(state["replay"]["data"]["observation"], r["observations"])


def test_nodes_without_a_shared_file_system_take_the_run_folder_of_rank_0(tmp_path):
    """Each process picks ``version_N`` from the folders it sees, before the processes connect; a node
    with its own disk (node 0's already holds version_0 and version_1, node 1's nothing) must still end
    up naming rank 0's folder (cli.RunFolderOfRankZero), and write nothing there."""
    first, second = tmp_path / "node0", tmp_path / "node1"
    for old in ("version_0", "version_1"):
        (first / "runs" / "sac_pendulum" / old).mkdir(parents=True)
    second.mkdir()
    port = free_port()
    args = ["--model.max_frames", "100", "--model.init_random_frames", "50", *dump_args(tmp_path / "dump")]
    assert_exit_0(run_all({"node0": (node_command("sac_pendulum", 0, port, *args), first),
                           "node1": (node_command("sac_pendulum", 1, port, *args), second)}, tmp_path / "logs"))
    r0, r1 = (torch.load(tmp_path / "dump" / f"rank{r}.pt") for r in (0, 1))
    assert {Path(d) for d in r0["logger_dirs"]} == {Path("runs", "sac_pendulum", "version_2")}
    assert r1["logger_dirs"] == r0["logger_dirs"]
    assert (first / "runs" / "sac_pendulum" / "version_2" / "checkpoints" / "last.ckpt").is_file()
    assert not list(second.iterdir())
