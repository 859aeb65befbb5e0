"""How far an MBSAC checkpoint's critics and known reward move when the real next state is replaced by
the SLBO model's prediction: the diagnosis behind the Humanoid recipe (docs/mbsac.md, "Humanoid").

    python -m benchmarks.mbsac_value_gap runs/mbsac_humanoid/version_0/checkpoints/last.ckpt [--samples 512]

From ``samples`` states of the last 20k real frames in the checkpoint's replay, the current stochastic
policy picks an action; the real next state comes from the gymnasium env set to that state (qpos and
qvel are read from the observation, so the observation must keep x: the MBSAC recipes do), the
predicted one from the model. Printed: the known reward's error on the prediction, the mean
``|Q(s'_model, mu(s'_model)) - Q(s'_real, mu(s'_real))|`` over both critics, and, when the observation
has contact forces, the same gap with the prediction's contact forces replaced by the real ones.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

from lightning_mbrl import keys
from lightning_mbrl.algos.mbsac import MBSAC
from lightning_mbrl.envs.mujoco_fns import contact_force_slice, reward_fn


def load(path: str) -> tuple[MBSAC, dict]:
    checkpoint = torch.load(path, weights_only=False, map_location="cpu")
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
    module = MBSAC(**hparams)
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval(), checkpoint["rank_states"][0]["replay"]["data"]


def real_next_states(env_id: str, env_kwargs: dict, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    env = gym.make(env_id, **env_kwargs).unwrapped
    nq, nv = env.model.nq, env.model.nv
    low, high = env.action_space.low, env.action_space.high
    out = []
    for o, a in zip(obs.double().numpy(), action.double().numpy()):
        env.reset()
        env.set_state(o[:nq], o[nq:nq + nv])
        out.append(env.step(low + (a + 1.0) * (high - low) / 2.0)[0])
    env.close()
    return torch.as_tensor(np.array(out), dtype=obs.dtype)


def value(module: MBSAC, obs: torch.Tensor) -> torch.Tensor:
    return module.q_values(obs, module.act(obs, deterministic=True))  # [critics, B]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    module, data = load(args.checkpoint)
    env_id, env_kwargs = module.hparams.env, dict(module.hparams.env_kwargs or {})
    if env_kwargs.get("exclude_current_positions_from_observation", True):
        raise SystemExit("error: the observation must keep x (exclude_current_positions_from_observation: false)")
    obs_all = data[keys.OBSERVATION]
    rows = torch.randint(max(0, len(obs_all) - 20_000), len(obs_all), (args.samples,))
    obs = obs_all[rows]
    action = module.act(obs)
    predicted = module.world_model(obs, action)
    real = real_next_states(env_id, env_kwargs, obs, action)

    reward = reward_fn(env_id, env_kwargs)
    error = reward(obs, action, predicted) - reward(obs, action, real)
    print(f"known reward on the prediction - on the real next state: mean {error.mean():.3f}, "
          f"mean |.| {error.abs().mean():.3f}")
    q_real = value(module, real)
    gap = (value(module, predicted) - q_real).abs().mean()
    print(f"Q at the real next state {q_real.mean():.1f}; |Q(model) - Q(real)| {gap:.1f}")

    forces = contact_force_slice(env_id, env_kwargs)
    if forces.stop > forces.start:
        mixed = predicted.clone()
        mixed[:, forces] = real[:, forces]
        force_error = (predicted - real)[:, forces]
        print(f"contact forces: prediction error rms {force_error.square().mean().sqrt():.1f}, "
              f"max {force_error.abs().max():.0f}; with the real ones: |Q(model) - Q(real)| "
              f"{(value(module, mixed) - q_real).abs().mean():.1f}")

if __name__ == "__main__":
    main()
