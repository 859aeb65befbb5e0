"""The registry: every paper's claims, each a measure of the runs a job makes and a rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


from lightning_mbrl.report.measures import (BenchmarkExact, BenchmarkShare, FractionOfOptimal, FramesRatio, FramesTo,
                                            FrozenModelGap, Gain, GradientErrorArgmin, GradientErrorGap, Measure,
                                            ModelPositionAccuracy, OnlineGap, PredictionsHold, ReturnAt, Rule, ScoreGap,
                                            SmoothingRise, TabularAbove, TabularFractionOfOptimal, above, at_least,
                                            at_most, below, contains, overlaps)


PAPERS = {
    "001": "The Benefits of Model-Based Generalization in Reinforcement Learning (Young, Ramesh, Kirsch and "
           "Schmidhuber 2023)",
    "002": "MBPO: When to Trust Your Model: Model-Based Policy Optimization (Janner et al. 2019)",
    "000": "BOOTS / MBSAC: On the Expressivity of Neural Networks for Deep Reinforcement Learning "
           "(Dong, Luo, Yu, Finn and Ma 2020)",
    "003": "OMD: Control-Oriented Model-Based Reinforcement Learning with Implicit Differentiation "
           "(Nikishin, Abachi, Agarwal and Bacon 2022)",
    "004": "MAAC: Model-Augmented Actor-Critic: Backpropagating through Paths (Clavera, Fu and Abbeel 2020)",
}


@dataclass(frozen=True)
class Claim:
    """One row of the report. ``jobs``: the :data:`JOBS` that make its runs; ``scale``: the smallest runner
    scale whose budgets can decide it."""

    paper: str
    name: str
    text: str
    paper_value: str
    measure: Measure
    rule: Rule
    jobs: tuple[str, ...]
    scale: str = "reduced"

    def command(self) -> str:
        scale = "" if self.scale == "reduced" else f" --scale {self.scale}"
        return f"python -m benchmarks.reproduce{scale} --only {self.name}"


_IP_MBPO = FramesTo("mbpo_invertedpendulum", threshold=950, budget=5_000, seeds=5)
_IP_SAC = FramesTo("sac_invertedpendulum", threshold=950, budget=15_000, seeds=5)
_IP_MAAC = FramesTo("maac_invertedpendulum", threshold=950, budget=3_000, seeds=3)

CLAIMS: tuple[Claim, ...] = (
    # ---------------------------------------------------------------- paper 001, model-based generalization
    Claim("001", "grid3x3_all_evaluation",
          "3x3 grid, All-Evaluation data: ER-DQN and the simple model with 1- and 10-step rollouts all pass",
          "all agents pass (Figure 1, 30 seeds)",
          PredictionsHold("all_evaluation"), at_least(1.0, "every agent as predicted"), ("generalization_3x3",)),
    Claim("001", "grid3x3_path_to_goal",
          "3x3 grid, Path-to-Goal data: ER-DQN fails, both model agents pass",
          "ER fails, model-1 and model-10 pass (Figure 1, 30 seeds)",
          PredictionsHold("path_to_goal"), at_least(1.0, "every agent as predicted"), ("generalization_3x3",)),
    Claim("001", "grid3x3_single_cell",
          "3x3 grid, Single-Cell data: only the 10-step model passes",
          "only model-10 passes (Figure 1, 30 seeds)",
          PredictionsHold("single_cell"), at_least(1.0, "every agent as predicted"), ("generalization_3x3",)),
    Claim("001", "grid3x3_no_evaluation",
          "3x3 grid, No-Evaluation data: every agent fails",
          "all agents fail (Figure 1, 30 seeds)",
          PredictionsHold("no_evaluation"), at_least(1.0, "every agent as predicted"), ("generalization_3x3",)),
    Claim("001", "grid3x3_model_near_perfect",
          "3x3 grid, Path-to-Goal data: the simple model predicts the next agent cell of every evaluation-layout "
          "transition (mean over seeds)",
          "near perfect (footnote 3)",
          ModelPositionAccuracy("path_to_goal"), at_least(0.95, "95%"), ("generalization_3x3",)),
    Claim("001", "panflute_reward_smoothing_simple",
          "9-pipe PanFlute, models after 10k steps: the simple model predicts more reward with 8 pipe-ends lit "
          "than with none, though the true reward of both is 0 (8 lit minus none, mean over seeds)",
          "smoothed reward rising with the lit pipe-ends (Figure 4 left)",
          SmoothingRise("simple", "reward_by_ends_now"), above(0.0, "0"), ("panflute_smoothing",)),
    Claim("001", "panflute_reward_smoothing_gaussian",
          "9-pipe PanFlute, models after 10k steps: the Gaussian latent model predicts more reward with 8 "
          "pipe-ends lit than with none (true reward 0 in both)",
          "smoothed reward rising with the lit pipe-ends (Figure 4 left)",
          SmoothingRise("gaussian", "reward_by_ends_now"), above(0.0, "0"), ("panflute_smoothing",)),
    Claim("001", "panflute_dynamics_smoothing_gaussian",
          "9-pipe PanFlute: the Gaussian latent model gives 'all pipe-ends lit next' more probability when 8 "
          "will be lit than when none will (true probability 0 in both)",
          "appreciable probability when only most will be lit (Figure 4 left)",
          SmoothingRise("gaussian", "p_all_next_by_ends_next"), above(0.0, "0"), ("panflute_smoothing",)),
    Claim("001", "panflute5_intermediate_model_fastest",
          "5-pipe PanFlute (reduced): Q learned from scratch on a simple model frozen after 3,000 model steps is "
          "near-optimal sooner than on one frozen after 7,000 (env steps, later minus earlier, paired by seed)",
          "an intermediately trained model is most useful (Figure 4 right, 9 pipes)",
          FrozenModelGap(3_000, 7_000), above(0.0, "0"), ("panflute_frozen_model",)),
    Claim("001", "panflute6_simple_above_perfect",
          "6-pipe PanFlute, high data, 10k steps (reduced): Dyna-DQN with the learned simple model ends above the "
          "perfect model (final greedy reward rate, paired by seed)",
          "learned models above the perfect model on harder PanFlute instances (Figure 3)",
          OnlineGap("gridworld/panflute-6", "simple", "perfect"), above(0.0, "0"), ("generalization_online",)),
    Claim("001", "panflute6_gaussian_above_perfect",
          "6-pipe PanFlute, high data, 10k steps (reduced): the Gaussian latent model ends above the perfect model",
          "learned models above the perfect model on harder PanFlute instances (Figure 3)",
          OnlineGap("gridworld/panflute-6", "gaussian", "perfect"), above(0.0, "0"), ("generalization_online",)),
    Claim("001", "procmaze3_low_simple_above_er",
          "ProcMaze of size 3, low data (10 updates per step), 1.5k steps (reduced): the simple model ends above "
          "ER-DQN (final greedy return, paired by seed)",
          "simple model above ER, more so in low data (Figure 3)",
          OnlineGap("gridworld/procmaze-3", "simple", "er"), above(0.0, "0"), ("generalization_online",)),
    Claim("001", "buttongrid3_low_simple_above_er",
          "ButtonGrid 3 x 3 with 2 buttons, low data (10 updates per step), 1.5k steps (reduced): the simple model "
          "ends above ER-DQN (final greedy reward rate, paired by seed)",
          "simple model above ER on ButtonGrid, more so in low data (Figure 3)",
          OnlineGap("gridworld/buttongrid-3-2", "simple", "er"), above(0.0, "0"), ("generalization_online",)),
    # ---------------------------------------------------------------- paper 004, MAAC
    Claim("004", "maac_vs_sac_invertedpendulum",
          "SAC needs at least 3x the frames MAAC needs to reach 950 on InvertedPendulum-v5 (known reward; the "
          "MBPO test's protocol; tests/learning/test_maac_invertedpendulum.py)",
          "MAAC far more sample-efficient than model-free SAC (Figure 2)",
          FramesRatio(_IP_SAC, _IP_MAAC), at_least(3.0, "3x"), ("maac_invertedpendulum", "sac_invertedpendulum")),
    Claim("004", "maac_mpc_keeps_return",
          "Test-time MPC (policy-seeded CEM on MAAC's ensemble, terminal Q) does not lower the trained MAAC "
          "policy's InvertedPendulum-v5 return at 3k frames (MPC minus policy, mean of 3 seeds)",
          "MPC raises the return (Table 1)",
          Gain("maac_invertedpendulum", 3_000, evaluator="mpc", statistic="mean", seeds=3), at_least(-10.0, "-10"),
          ("maac_invertedpendulum",)),
    Claim("004", "maac_halfcheetah_50k",
          "MAAC's HalfCheetah (MBBL variant) return reaches about 10k within about 50 rollouts (here: at 55k "
          "frames, the 5k random ones included; mean of the code's 4 seeds)",
          "10k return in 50 trajectories (Section 1; Figure 2)",
          ReturnAt("maac_halfcheetah", 55_000, seeds=4), at_least(9_000.0, "9,000 (10k - 10%)"),
          ("maac_halfcheetah",), scale="paper"),
    Claim("004", "maac_halfcheetah_table1",
          "MAAC's converged HalfCheetah (MBBL variant) return at the code's 205k frames matches Table 1 (mean of "
          "the code's 4 seeds)",
          "1.07e4 +- 253 (Table 1, maac)",
          ReturnAt("maac_halfcheetah", 205_000, seeds=4), overlaps(10_447, 10_953, "1.07e4 +- 253"),
          ("maac_halfcheetah",), scale="paper"),
    Claim("004", "maac_gradient_true_below_learned",
          "Double integrator, MAAC gradient at H = 10: the L1 error against the oracle is larger with the learned "
          "model than with the true dynamics (learned minus true, paired by seed)",
          "true dynamics lower (Figure 3, H up to 10)",
          GradientErrorGap(10), above(0.0, "0"), ("maac_gradient_error",)),
    Claim("004", "maac_gradient_learned_u_shape",
          "Double integrator: the learned-model gradient error first falls, then rises with H (its smallest mean "
          "error at an H strictly between 0 and 10)",
          "falls, then rises (Figure 3)",
          GradientErrorArgmin(), overlaps(1, 9, "1 <= H <= 9"), ("maac_gradient_error",)),
    # ---------------------------------------------------------------- paper 002, MBPO
    Claim("002", "mbpo_invertedpendulum_950",
          "MBPO reaches return 950 on InvertedPendulum-v5 within ~5k frames (10 deterministic episodes every 250)",
          "~5k frames (Figure 2; read from figure, approximate)",
          _IP_MBPO, at_most(5_000, "5,000 frames"), ("mbpo_invertedpendulum",)),
    Claim("002", "mbpo_vs_sac_invertedpendulum",
          "SAC needs far more frames than MBPO to reach 950 on InvertedPendulum-v5 (here: at least 3x)",
          "far more (Figure 2; read from figure)",
          FramesRatio(_IP_SAC, _IP_MBPO), at_least(3.0, "3x"), ("mbpo_invertedpendulum", "sac_invertedpendulum")),
    Claim("002", "mbpo_hopper_100k",
          "MBPO's Hopper-v5 return at 100k frames matches the paper's curve (mean of 5 seeds)",
          "~3,000 at 100k frames (Figure 2; read from figure, approximate)",
          ReturnAt("mbpo_hopper", 100_000, seeds=5), overlaps(2_700, 3_300, "3,000 +- 10%"), ("mbpo_hopper",),
          scale="paper"),
    Claim("002", "mbpo_halfcheetah_400k",
          "MBPO's HalfCheetah-v5 return at 400k frames matches the paper's curve (mean of 5 seeds)",
          "~9,000-10,000 at 400k frames (Figure 2; read from figure, approximate)",
          ReturnAt("mbpo_halfcheetah", 400_000, seeds=5), overlaps(9_000, 10_000, "[9,000, 10,000]"),
          ("mbpo_halfcheetah",), scale="paper"),
    # ---------------------------------------------------------------- paper 000, BOOTS
    Claim("000", "theorem_4_2_pieces",
          "Theorem 4.2: the optimal policy of the Definition 4.1 MDP has 2^(H+1) pieces for H = 4..6 (exact solver; "
          "the paper assumes H > 3, docs/piecewise_linear.md)",
          "2^(H+1); 32 for H = 4 (Theorem 4.2, Figure 2)",
          BenchmarkExact("pwl_def41", "policy_pieces", "theorem_4_2_policy_pieces"), at_least(1.0, "100% match"),
          ("pwl_def41",)),
    Claim("000", "rand_pieces",
          "Share of 1,000 RAND MDPs (horizon 10) whose optimal policy has more than 100 pieces",
          "8.6% (Section 5.1)",
          BenchmarkShare("pwl_stats", "rand", "fraction_policy_pieces_gt_100"), contains(0.086, "8.6%"),
          ("pwl_stats",)),
    Claim("000", "semi_rand_pieces",
          "Share of 1,000 SEMI-RAND MDPs (horizon 10) whose optimal policy has more than 1,000 pieces",
          "68.7% (Section 5.1; the generators' Appendix D.1 is not available, docs/piecewise_linear.md)",
          BenchmarkShare("pwl_stats", "semi-rand", "fraction_policy_pieces_gt_1000"), contains(0.687, "68.7%"),
          ("pwl_stats",)),
    Claim("000", "dqn_below_optimal",
          "A small DQN (2 x 32) stays below the optimal return on SEMI-RAND MDP 0 (30k frames, IQM of 3 seeds)",
          "DQN does not reach the optimum (Figures 3 and 5)",
          FractionOfOptimal("dqn_pwl", 30_000, "policy"), below(0.99, "0.99 of optimal"), ("dqn_pwl",)),
    Claim("000", "boots_dqn_k3_near_optimal",
          "BOOTS-DQN with k = 3 (exhaustive search) is near-optimal on SEMI-RAND MDP 0 (30k frames, IQM of 3 seeds)",
          "near-optimal with k = 3 (Figure 5)",
          FractionOfOptimal("dqn_pwl", 30_000, "boots_k3"), at_least(0.98, "0.98 of optimal"), ("dqn_pwl",)),
    Claim("000", "boots_sac_pendulum",
          "BOOTS (k = 4) over a small SAC (16 x 16, 8k frames) raises the Pendulum-v1 return (mean of 4 evaluations)",
          "BOOTS-SAC above SAC (Figure 4, on Ant and Humanoid; Pendulum is a miniature of it)",
          Gain("sac_pendulum_boots", 8_000), above(0.0, "0"), ("sac_pendulum_boots",)),
    Claim("000", "boots_mbsac_humanoid_50k",
          "BOOTS (k = 4) raises MBSAC's Humanoid-v5 return, at 50k frames (as far as a 2-core CPU goes; 2 seeds)",
          "BOOTS-MBSAC above MBSAC, most of all on Humanoid (Figure 4; curves only, no numbers)",
          Gain("mbsac_humanoid", 50_000, statistic="mean", seeds=2), above(0.0, "0"), ("mbsac_humanoid",)),
    Claim("000", "boots_mbsac_humanoid_400k",
          "BOOTS (k = 4) raises MBSAC's Humanoid-v5 return over 400k frames (mean over evaluations, 5 seeds)",
          "BOOTS-MBSAC above MBSAC, most of all on Humanoid (Figure 4; curves only, no numbers)",
          Gain("mbsac_humanoid", 400_000, statistic="mean", seeds=5), above(0.0, "0"), ("mbsac_humanoid",),
          scale="paper"),
    # ---------------------------------------------------------------- paper 003, OMD
    Claim("003", "omd_tabular_above_mle",
          "Two-state MDP: OMD's return J is above MLE's at each of Figure 2's kappas below 3 (model class too "
          "small; paired by seed)",
          "OMD outperforms MLE when the model's capacity is limited (Figure 2, 10 seeds)",
          TabularAbove(), at_least(1.0, "every such kappa"), ("omd_tabular",)),
    Claim("003", "omd_tabular_largest_kappa",
          "Two-state MDP: OMD at Figure 2's largest kappa (5.05) is within 1% of the optimal return",
          "near the optimum at large kappa (Figure 2; read from figure)",
          TabularFractionOfOptimal(), at_least(0.99, "0.99 of optimal"), ("omd_tabular",)),
    Claim("003", "omd_cartpole_hidden3",
          "CartPole, model 3 x 3, the code's settings: OMD's return above MLE's (mean of the evaluations at 40k-60k "
          "frames, paired by seed; the paper's budget is 200k)",
          "OMD above MLE at small model sizes (Figure 4 left, 10 seeds; read from figure)",
          ScoreGap("omd_cartpole_h3", "mle_cartpole_h3", 40_000, 60_000, seeds=5), above(0.0, "0"),
          ("omd_cartpole_h3", "mle_cartpole_h3")),
    Claim("003", "omd_cartpole_hidden3_qlr1e-3",
          "CartPole, model 3 x 3, both agents' Q learning rate 1e-3 (the paper's sweep's middle value): OMD's return "
          "above MLE's (mean of the evaluations at 40k-60k frames, paired by seed)",
          "OMD above MLE at small model sizes (Figure 4 left, 10 seeds; read from figure)",
          ScoreGap("omd_cartpole_h3_qlr1e-3", "mle_cartpole_h3_qlr1e-3", 40_000, 60_000, seeds=5), above(0.0, "0"),
          ("omd_cartpole_h3_qlr1e-3", "mle_cartpole_h3_qlr1e-3")),
)
