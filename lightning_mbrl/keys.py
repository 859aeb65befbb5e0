"""Every TensorDict key the library reads or writes, and nothing else.

TorchRL's defaults are reused: a transition is a TensorDict with the current step at the root and
the step's outcome under ``"next"``.
"""

OBSERVATION = "observation"
ACTION = "action"
#: The log-probability of the action under the policy that drew it (imagined rollouts), ``[..., 1]``.
ACTION_LOG_PROB = "action_log_prob"
NEXT = "next"
NEXT_OBSERVATION = (NEXT, OBSERVATION)
REWARD = (NEXT, "reward")
TERMINATED = (NEXT, "terminated")
TRUNCATED = (NEXT, "truncated")
DONE = (NEXT, "done")
STEP_COUNT = "step_count"
EPISODE_RETURN = "episode_reward"  # written by torchrl.envs.RewardSum
NEXT_EPISODE_RETURN = (NEXT, EPISODE_RETURN)
#: World-model steps: ``P(not terminated)`` of the step, ``[*B, 1]`` (``models.rollout``).
CONTINUE_PROB = (NEXT, "continue_prob")

#: A replay row's env state before the step (paper 001's perfect model steps the true dynamics from it):
#: the gridworld core's state TensorDict.
ENV_STATE = "env_state"

#: The keys a model-free off-policy update needs from a replay sample.
TRANSITION_KEYS = (OBSERVATION, ACTION, REWARD, TERMINATED, NEXT_OBSERVATION)
