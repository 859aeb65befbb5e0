"""Planners as pure tensor code (no Lightning imports), evaluation only: generic sequence
optimisers (CEM, MPPI, random shooting, exhaustive search), BOOTS (Dong et al. 2020, Eq. 5) and
test-time MPC (Clavera et al. 2020, Section 5.4). They take plain callables (dynamics, Q, policy
distribution; contracts in ``boots.py``) and plan for E episodes and C candidates as one batch.
"""

from lightning_mbrl.planners.boots import (
    BootsPlan,
    BootsPlanner,
    DynamicsFn,
    PolicyDistFn,
    QAllFn,
    QFn,
    bootstrapped_return,
    plan_cem_action,
    plan_cem_noise,
    plan_exhaustive,
    plan_shooting,
)
from lightning_mbrl.planners.cem import (
    ScoreFn,
    SearchResult,
    cem,
    enumerate_sequences,
    exhaustive_search,
    mppi,
    random_shooting,
    standard_normal,
)
from lightning_mbrl.planners.mpc import MPCPlan, MPCPlanner, plan_mpc, policy_prior

__all__ = [
    "BootsPlan",
    "BootsPlanner",
    "DynamicsFn",
    "MPCPlan",
    "MPCPlanner",
    "PolicyDistFn",
    "QAllFn",
    "QFn",
    "ScoreFn",
    "SearchResult",
    "bootstrapped_return",
    "cem",
    "enumerate_sequences",
    "exhaustive_search",
    "mppi",
    "plan_cem_action",
    "plan_cem_noise",
    "plan_exhaustive",
    "plan_mpc",
    "plan_shooting",
    "policy_prior",
    "random_shooting",
    "standard_normal",
]
