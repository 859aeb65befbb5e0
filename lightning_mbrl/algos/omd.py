"""OMD, and its MLE and VEP baselines, for discrete actions (Nikishin et al. 2022, "Control-Oriented
Model-Based Reinforcement Learning with Implicit Differentiation", paper 003, Algorithm 1 and
Section 6; the official CartPole code's settings, REFERENCE 3.1-3.2; docs/omd.md).

All three agents learn a deterministic model ``T_theta(s, a) = (r_hat, s_hat')`` and train their
Q-function only on the model's predictions for real ``(s, a)``; they differ only in the model's loss
(``model_loss``):

- ``"omd"``: the implicit gradient of the real Bellman error of the Q-function fitted on the model
  (Eq. 11-13, ``objectives.omd.implicit_gradient``, identity or conjugate-gradient inverse);
- ``"mle"``: ``||s_hat' - s'||^2`` (summed over dimensions) ``+ (r_hat - r)^2``, batch means;
- ``"vep"``: ``sum_i (V_i(s') - V_i(s_hat'))^2 + (r_hat - r)^2`` with ``vep_value_functions`` fixed
  random value networks (Grimm et al. 2020, paper Eq. 14 with the code's choices).

Soft Q-learning (REFERENCE 3.2): two Q-networks (double Q: the target is the soft value of the
elementwise minimum of the two target networks; acting uses their average), temperature
``alpha = 0.01``, ``V(s') = alpha logsumexp(Q(s', .) / alpha)``, bootstrap mask ``1 - terminated``
(time-limit truncations keep it); behaviour ``a ~ softmax(Q(s, .) / alpha)``, uniform with probability
``epsilon = 0.1``.

One update (``update``; one per real frame after 1,000 random frames), with ``w`` the Q parameters,
``w_bar`` the target networks, all on one replay batch ``(s, a, r, s', d)`` of 256:

    omd:
        (r_hat, s_hat') = T_theta(s, a)                       (theta is fixed in the inner loop)
        Q optimiser state re-initialised                      (REFERENCE 3.1; kept with warm_opt=True)
        repeat K (inner_steps) times:                         (warm-started from the previous w)
            Adam step on L(theta, w) = mean_j E[(Q_j(s, a) - r_hat - gamma (1 - d) V_bar(s_hat'))^2]  (Eq. 10)
            w_bar <- (1 - tau) w_bar + tau w
        model step (Adam): dL_true(w*)/dtheta ~ -(dL_true/dw) (d^2 L(theta, w*) / dtheta dw)  (Eq. 13; "cg": Eq. 7)
             with L_true(w) = L on the real (r, s')                                         (Eq. 11)
    mle / vep (the code's order and its persistent Q optimiser):
        model step (Adam) on the model loss above
        (r_hat, s_hat') = T_theta(s, a) with the updated model
        repeat K times: the Adam step on L(theta, w) and the Polyak step, as above

The inner loss reaches only the Q-networks (the model's predictions enter as constants); the model step
reaches only the model (its gradient is set as the model parameters' ``.grad``, or backpropagated from a
loss whose only parameters are the model's); the target networks move only by the Polyak step and the
VEP value functions never move. ``act`` maps ``observation [*B, D] -> long [*B]``.

Distractors (paper Section 7): ``distractors = n > 0`` appends ``n`` standard-normal dimensions to every
observation of every env the agent makes (training and evaluation, ``envs.distractors``); the model then
predicts them too.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any, Literal

import torch
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn
from torch.func import functional_call
from torchrl.envs import EnvBase

from lightning_mbrl import keys
from lightning_mbrl.algos.base import OffPolicyAlgorithm
from lightning_mbrl.envs.distractors import add_distractors, find_distractors
from lightning_mbrl.errors import ConfigError, LeftOpenUnitInterval, check_arguments, plain
from lightning_mbrl.models.critic import DiscreteQ
from lightning_mbrl.models.mlp import BatchedLinear, BatchedMLP, mlp
from lightning_mbrl.models.utils import adam, polyak_update
from lightning_mbrl.objectives.omd import (
    Params,
    QAll,
    double_soft_q_target,
    implicit_gradient,
    soft_bellman_loss,
    soft_q_target,
)
from lightning_mbrl.precision import full_precision_context

ModelLoss = Literal["omd", "mle", "vep"]
Approximation = Literal["identity", "cg"]  # objectives.omd.APPROXIMATIONS (a test checks)
#: The VEP value functions' hidden widths: "5 random value functions (2 x 32 each)" (REFERENCE 3.2).
VEP_HIDDEN = (32, 32)
#: Every network's initialisation in the official CartPole code (its one ``net_fn`` builds Q, the model and
#: the VEP value functions): orthogonal, scale sqrt(2) for hidden layers, 1e-2 for the output layer; zero biases.
HIDDEN_GAIN, OUTPUT_GAIN = math.sqrt(2.0), 1e-2


# ---------------------------------------------------------------------------------------------- networks
def orthogonal_init_(net: nn.Module, hidden_gain: float, output_gain: float) -> nn.Module:
    """Orthogonal weights (``hidden_gain``, the last layer ``output_gain``) and zero biases, for a network of
    ``nn.Linear`` layers (weight ``[out, in]``) or ``BatchedLinear`` layers (weight ``[E, in, out]``: each
    member's matrix orthogonal on its own)."""
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, BatchedLinear))]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            gain = output_gain if i == len(layers) - 1 else hidden_gain
            if isinstance(layer, nn.Linear):
                nn.init.orthogonal_(layer.weight, gain=gain)
            else:
                for member in layer.weight:
                    nn.init.orthogonal_(member, gain=gain)
            nn.init.zeros_(layer.bias)
    return net


class DeterministicModel(nn.Module):
    """``T_theta(s, a) = (r_hat, s_hat')``: two MLPs on ``[s, onehot(a)]``, one predicting the next
    observation directly (not a delta), one the reward (REFERENCE 3.2: ``hidden`` = (32, 32); the
    misspecification sweep uses widths 1 to 12 for both).

    ``next(observation [B, D], action long [B]) -> [B, D]``, ``reward(...) -> [B]``,
    ``forward(...) -> (reward [B], next_observation [B, D])``.
    """

    def __init__(self, observation_dim: int, n_actions: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.dynamics = orthogonal_init_(mlp(observation_dim + n_actions, hidden, observation_dim), HIDDEN_GAIN, OUTPUT_GAIN)
        self.reward_net = orthogonal_init_(mlp(observation_dim + n_actions, hidden, 1), HIDDEN_GAIN, OUTPUT_GAIN)

    def inputs(self, observation: Tensor, action: Tensor) -> Tensor:
        onehot = nn.functional.one_hot(action.long(), self.n_actions).to(observation.dtype)
        return torch.cat([observation, onehot], dim=-1)

    def next(self, observation: Tensor, action: Tensor) -> Tensor:
        return self.dynamics(self.inputs(observation, action))

    def reward(self, observation: Tensor, action: Tensor) -> Tensor:
        return self.reward_net(self.inputs(observation, action)).squeeze(-1)

    def forward(self, observation: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        x = self.inputs(observation, action)
        return self.reward_net(x).squeeze(-1), self.dynamics(x)


# ---------------------------------------------------------------------------------------------- the agent
class OMD(OffPolicyAlgorithm):
    def __init__(
        self,
        env: str = "CartPole-v1",
        env_kwargs: dict[str, Any] | None = None,
        max_episode_steps: PositiveInt | None = None,
        seed: int = 0,
        max_frames: PositiveInt = 200_000,
        init_random_frames: NonNegativeInt = 1_000,
        frames_per_iteration: PositiveInt = 1,
        updates_per_frame: PositiveInt = 1,
        batch_size: PositiveInt = 256,
        buffer_size: PositiveInt = 200_000,
        model_loss: ModelLoss = "omd",
        hidden: tuple[PositiveInt, ...] = (32, 32),
        model_hidden: PositiveInt = 32,
        distractors: NonNegativeInt = 0,
        alpha: PositiveFloat = 0.01,
        hard: bool = False,
        double: bool = True,
        gamma: ClosedUnitInterval = 0.99,
        epsilon: ClosedUnitInterval = 0.1,
        tau: LeftOpenUnitInterval = 0.01,
        q_lr: PositiveFloat = 3e-4,
        model_lr: PositiveFloat = 1e-3,
        inner_steps: PositiveInt = 1,
        warm_opt: bool = False,
        approx: Approximation = "identity",
        cg_damping: NonNegativeFloat = 1e-5,
        cg_max_iter: PositiveInt = 100,
        cg_negative_curvature: Literal["continue", "stop"] = "continue",
        vep_value_functions: PositiveInt = 5,
    ) -> None:
        """
        Args:
            env: a ``make_env`` id with a discrete action space; sizes are read from it.
            model_loss: how the model is trained: ``"omd"`` (implicit gradient of the real Bellman
                error), ``"mle"`` (next-observation and reward MSE) or ``"vep"`` (value equivalence).
            hidden: hidden widths of each Q-network (the code: 2 x 32 ReLU).
            model_hidden: width of both hidden layers of the model's dynamics and reward MLPs
                (misspecification sweep: 1, 2, 3, 4, 6, 12).
            distractors: standard-Gaussian dimensions appended to every observation (0: none).
            alpha: soft Q-learning temperature (target value and behaviour softmax).
            hard: the target value is ``max_a' Q`` instead of the log-sum-exp (the code's ``--hard``).
            double: two Q-networks, the target from the minimum of their targets (``False``: one, the
                code's ``--no_double``).
            epsilon: probability of a uniform random action in the behaviour policy.
            tau: Polyak coefficient of the target networks, applied after every inner Q step.
            q_lr, model_lr: Adam learning rates of the Q-networks (inner) and the model (outer).
            inner_steps: K, Q steps per model step.
            warm_opt: OMD only: keep the Q optimiser's Adam state across model steps (the code's ``--warm_opt``);
                by default it is re-initialised before every inner loop (REFERENCE 3.1). MLE and VEP keep it
                always, as the code does.
            approx: the inverse Hessian of the implicit gradient: ``"identity"`` (the code's default)
                or ``"cg"`` (the code's ``--with_inv_jac``); ``model_loss="omd"`` only.
            cg_damping, cg_max_iter: the CG solve of ``(H + cg_damping I) u = v`` (1e-5, 100 in the code).
            cg_negative_curvature: on a direction of negative curvature (the Hessian in ReLU weights is
                often indefinite) CG steps on (``"continue"``, as the code's ``jax.scipy.sparse.linalg.cg``)
                or stops with its current iterate (``"stop"``: zero on the first direction; about half
                the updates of a CartPole run then got no model gradient).
            vep_value_functions: the number of fixed random value functions of ``"vep"``.

        Each argument is checked against its annotation (``errors.check_arguments``).
        """
        check_arguments(OMD, locals())
        super().__init__(
            env, env_kwargs=env_kwargs, max_episode_steps=max_episode_steps, seed=seed,
            max_frames=max_frames, init_random_frames=init_random_frames,
            frames_per_iteration=frames_per_iteration, updates_per_frame=updates_per_frame,
            batch_size=batch_size, buffer_size=buffer_size, continuous_only=False,
        )
        self.save_hyperparameters()
        self.hparams.update(plain(dict(self.hparams)))  # jsonargparse's PositiveInt(3) as 3 in checkpoints
        if not self.spec.discrete:
            raise ConfigError(f"OMD needs a discrete action space; env {env!r} has a Box action space "
                              f"({self.spec.action_dim}-dimensional)")
        if approx != "identity" and model_loss != "omd":
            raise ConfigError(f"approx={approx!r} applies to model_loss='omd' only (got model_loss={model_loss!r})")
        self.spec = replace(self.spec, observation_dim=self.spec.observation_dim + distractors)
        obs_dim, n_actions = self.spec.observation_dim, self.spec.num_actions

        with torch.random.fork_rng():  # reproducible initialisation without touching the global RNG
            torch.manual_seed(seed)
            self.q_nets = nn.ModuleList(
                DiscreteQ(obs_dim, n_actions, hidden) for _ in range(2 if double else 1))
            for q in self.q_nets:
                orthogonal_init_(q.net, HIDDEN_GAIN, OUTPUT_GAIN)
            self.world_model = DeterministicModel(obs_dim, n_actions, (model_hidden, model_hidden))
            self.value_functions = None
            if model_loss == "vep":  # fixed: a named stop-gradient on parameters no optimizer holds
                self.value_functions = orthogonal_init_(
                    BatchedMLP(vep_value_functions, obs_dim, VEP_HIDDEN, 1), HIDDEN_GAIN, OUTPUT_GAIN).requires_grad_(False)
        self.target_nets = copy.deepcopy(self.q_nets).requires_grad_(False)
        # counters (saved in the checkpoint): outer updates are self.updates
        self.q_steps = 0  # inner Adam steps
        self.target_updates = 0  # Polyak steps of the target networks

    # ----------------------------------------------------------------------------- envs
    def make_env(self, num_envs: int = 1, seed: int | None = None, **overrides: Any) -> EnvBase:
        """The base env, with ``distractors`` Gaussian dimensions appended (seeded by ``seed``)."""
        env = super().make_env(num_envs, seed, **overrides)
        if self.hparams.distractors:
            env = add_distractors(env, self.hparams.distractors, seed)
        return env

    # ----------------------------------------------------------------------------- the policy
    def q_functions(self, params: Params | None = None) -> list[QAll]:
        """The online Q-networks as functions ``observation [B, D] -> [B, n_actions]``; with ``params``
        (named as ``self.q_nets.named_parameters()``, e.g. ``"0.net.0.weight"``) through
        ``torch.func.functional_call``, as ``objectives.omd`` differentiates them."""
        if params is None:
            return list(self.q_nets)
        functions = []
        for i, net in enumerate(self.q_nets):
            prefix = f"{i}."
            own = {name[len(prefix):]: p for name, p in params.items() if name.startswith(prefix)}
            functions.append(lambda obs, net=net, own=own: functional_call(net, own, (obs,)))
        return functions

    def q_all(self, observation: Tensor) -> Tensor:
        """``[*B, D] -> [*B, n_actions]``: the average of the online Q-networks (what the agent acts on)."""
        return torch.stack([q(observation) for q in self.q_nets]).mean(dim=0)

    @torch.no_grad()
    def act(self, observation: Tensor, deterministic: bool = False) -> Tensor:
        """``observation [*B, D] -> long [*B]``: greedy on the average Q if ``deterministic``, else
        ``softmax(Q / alpha)`` sampled, replaced by a uniform action with probability ``epsilon``."""
        q = self.q_all(observation)
        greedy = q.argmax(dim=-1)
        if deterministic:
            return greedy
        soft = torch.distributions.Categorical(logits=q / self.hparams.alpha).sample()
        explore = torch.rand(greedy.shape, device=q.device) < self.hparams.epsilon
        uniform = torch.randint(q.shape[-1], greedy.shape, device=q.device)
        return torch.where(explore, uniform, soft)

    # ----------------------------------------------------------------------------- losses
    @staticmethod
    def transitions(batch: TensorDictBase) -> dict[str, Tensor]:
        """A replay batch as flat tensors: ``observation [B, D]``, ``action long [B]``, ``reward [B]``,
        ``terminated bool [B]``, ``next_observation [B, D]``."""
        return {
            "observation": batch.get(keys.OBSERVATION),
            "action": batch.get(keys.ACTION).long().reshape(-1),
            "reward": batch.get(keys.REWARD).reshape(-1),
            "terminated": batch.get(keys.TERMINATED).reshape(-1),
            "next_observation": batch.get(keys.NEXT_OBSERVATION),
        }

    def bellman_target(self, reward: Tensor, next_observation: Tensor, terminated: Tensor,
                       grad_to_inputs: bool = False) -> Tensor:
        """``r + gamma (1 - d) V_bar(s')`` from the target networks (double: their minimum); no graph, or
        (``grad_to_inputs``) the graph of ``reward`` and ``next_observation`` only. ``-> [B]``."""
        hp = self.hparams
        kwargs = dict(alpha=hp.alpha, gamma=hp.gamma, hard=hp.hard, grad_to_inputs=grad_to_inputs)
        if hp.double:
            return double_soft_q_target(reward, terminated, next_observation, *self.target_nets, **kwargs)
        return soft_q_target(reward, terminated, next_observation, self.target_nets[0], **kwargs)

    def inner_loss(self, theta: Params, w: Params, batch: dict[str, Tensor]) -> Tensor:
        """``L(theta, w)`` (Eq. 10): the soft Bellman loss of ``Q_w`` on the model's ``(r_hat, s_hat')``
        for the real ``(s, a)``, differentiable in both (``theta``: the world model's parameters by
        name; ``w``: ``self.q_nets``'). OMD's constraint is ``grad_w L = 0``."""
        reward, next_observation = functional_call(self.world_model, theta, (batch["observation"], batch["action"]))
        target = self.bellman_target(reward, next_observation, batch["terminated"], grad_to_inputs=True)
        return soft_bellman_loss(batch["observation"], batch["action"], target, self.q_functions(w))["loss_q"]

    def outer_loss(self, w: Params, batch: dict[str, Tensor]) -> Tensor:
        """``L_true(w)`` (Eq. 11): the same loss on the real ``(r, s')``; reaches only ``w``."""
        target = self.bellman_target(batch["reward"], batch["next_observation"], batch["terminated"])
        return soft_bellman_loss(batch["observation"], batch["action"], target, self.q_functions(w))["loss_q"]

    def implicit_model_gradient(self, batch: dict[str, Tensor]) -> tuple[Params, TensorDict]:
        """OMD's model gradient (Eq. 13, or Eq. 7 with ``approx="cg"``) at the current Q parameters
        taken as ``w*``: the world model's parameter names -> detached gradients, and the diagnostics
        (``loss_outer``; ``cg_iterations``, ``cg_residual``). Touches no ``.grad``. Always in full
        precision, also under ``--trainer.precision bf16-mixed``: conjugate gradients on Hessian-vector
        products through bf16 layers would solve a noisy system, and these networks are too small for bf16
        to pay."""
        hp = self.hparams
        with full_precision_context():
            return implicit_gradient(
                self.inner_loss, lambda w: self.outer_loss(w, batch),
                dict(self.world_model.named_parameters()), dict(self.q_nets.named_parameters()), batch,
                approx=hp.approx, damping=hp.cg_damping, max_iter=hp.cg_max_iter,
                negative_curvature=hp.cg_negative_curvature,
            )

    def model_losses(self, batch: dict[str, Tensor], reward: Tensor, next_observation: Tensor) -> TensorDict:
        """The MLE or VEP model loss of the model's predictions ``reward [B]``, ``next_observation [B, D]``
        for ``batch``: ``loss_model = loss_dynamics + loss_reward``, with ``loss_dynamics`` the next
        observation's squared error summed over dimensions (MLE) or ``sum_i (V_i(s') - V_i(s_hat'))^2``
        over the fixed value functions (VEP), each a batch mean. Reaches only the model."""
        loss_reward = (reward - batch["reward"]).square().mean()
        if self.hparams.model_loss == "mle":
            loss_dynamics = (next_observation - batch["next_observation"]).square().sum(-1).mean()
        elif self.hparams.model_loss == "vep":
            values = self.value_functions(torch.cat([batch["next_observation"], next_observation]))  # [K, 2B, 1]
            real, predicted = values.squeeze(-1).chunk(2, dim=-1)  # [K, B] each
            loss_dynamics = (real - predicted).square().mean(-1).sum()
        else:
            raise ValueError(f"model_losses serves model_loss 'mle' or 'vep', not {self.hparams.model_loss!r}")
        return TensorDict({"loss_model": loss_dynamics + loss_reward, "loss_dynamics": loss_dynamics,
                           "loss_reward": loss_reward}, batch_size=[])

    # ----------------------------------------------------------------------------- optimisation
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            "model": adam(self.world_model.parameters(), lr=self.hparams.model_lr),
            "q": adam(self.q_nets.parameters(), lr=self.hparams.q_lr),
        }

    def q_step(self, batch: dict[str, Tensor], reward: Tensor, next_observation: Tensor) -> TensorDict:
        """One inner step: Adam on ``L(theta, w)`` w.r.t. the Q-networks, the model's predictions
        ``reward [B]``, ``next_observation [B, D]`` entering as constants; then the Polyak step."""
        target = self.bellman_target(reward, next_observation, batch["terminated"])  # no graph
        out = soft_bellman_loss(batch["observation"], batch["action"], target, self.q_functions())
        self.apply_gradients(out["loss_q"], self.optimizer("q"))
        self.q_steps += 1
        polyak_update(self.target_nets, self.q_nets, self.hparams.tau)
        self.target_updates += 1
        return out.detach()

    def model_step(self, batch: dict[str, Tensor], reward: Tensor, next_observation: Tensor) -> TensorDict:
        """One Adam step of the model: the implicit gradient (OMD) or the MLE / VEP loss of the
        predictions ``reward``, ``next_observation`` (with their graph). Returns the diagnostics."""
        model_opt = self.optimizer("model")
        if self.hparams.model_loss == "omd":
            grads, out = self.implicit_model_gradient(batch)
            self.step_with_gradients(self.world_model, grads, model_opt)
            return out
        out = self.model_losses(batch, reward, next_observation)
        self.apply_gradients(out["loss_model"], model_opt)
        with torch.no_grad():  # the real Bellman error, a diagnostic here (OMD's outer loss)
            out["loss_outer"] = self.outer_loss(dict(self.q_nets.named_parameters()), batch)
        return out.detach()

    def reset_q_optimizer(self) -> None:
        """Forget the Q optimiser's Adam moments and step count (the code's ``optimizer.init`` before
        each inner loop)."""
        opt = self.optimizer("q")
        getattr(opt, "optimizer", opt).state.clear()

    def update(self, batch: TensorDictBase) -> TensorDict:
        """One outer update on a replay batch (module docstring). OMD: K inner Q steps on the model's
        predictions (the Q optimiser re-initialised first unless ``warm_opt``), then the implicit model step.
        MLE and VEP, in the code's order: the model step first, then K Q steps on the updated model's
        predictions, with a persistent Q optimiser (the code re-initialises it only in OMD's inner loop).
        Returns the detached losses and diagnostics."""
        hp = self.hparams
        data = self.transitions(batch)
        observation, action = data["observation"], data["action"]
        if hp.model_loss == "omd":
            with torch.no_grad():
                reward, next_observation = self.world_model(observation, action)
            if not hp.warm_opt:
                self.reset_q_optimizer()
            for _ in range(hp.inner_steps):
                metrics = self.q_step(data, reward, next_observation)
            metrics.update(self.model_step(data, reward, next_observation))
        else:
            model_metrics = self.model_step(data, *self.world_model(observation, action))
            with torch.no_grad():
                reward, next_observation = self.world_model(observation, action)
            for _ in range(hp.inner_steps):
                metrics = self.q_step(data, reward, next_observation)
            metrics.update(model_metrics)
        # the model's error on the predictions the Q-function was trained on
        metrics["next_observation_mse"] = (next_observation - data["next_observation"]).square().sum(-1).mean()
        self.updates += 1
        return metrics

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self.collect()
        metrics = None
        if not self.warming_up:
            for _ in range(self.updates_per_iteration):
                metrics = self.update(self.sample(self.hparams.batch_size))
        self.log_iteration(metrics)

    # ----------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["loop_counters"]["q_steps"] = self.q_steps
        checkpoint["loop_counters"]["target_updates"] = self.target_updates

    def rank_state(self) -> dict[str, Any]:
        """The base runtime plus the distractors' generator (their next values), if any."""
        state = super().rank_state()
        distractors = find_distractors(self.runtime.env)
        state["distractors"] = distractors.generator_state() if distractors is not None else None
        return state

    def load_rank_state(self, state: dict[str, Any]) -> None:
        super().load_rank_state(state)
        distractors = find_distractors(self.runtime.env)
        if distractors is not None and state.get("distractors") is not None:
            distractors.load_generator_state(state["distractors"])
