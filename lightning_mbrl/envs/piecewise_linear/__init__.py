"""1-D piecewise-linear MDPs of Dong, Luo, Yu, Finn, Ma (2020), "On the Expressivity of Neural
Networks for Deep Reinforcement Learning" (BOOTS, paper 000), with exact solvers.

What is here (pure numpy/torch, no Lightning), one module each:

- ``algebra``: :class:`~.algebra.PiecewiseLinear`, a function on S = [0, 1) made of linear pieces,
  with jumps allowed, and the operations the Bellman operator needs (evaluate, compose, add,
  scale, upper envelope, integrate, count pieces).
- ``mdps``: :class:`~.mdps.PiecewiseLinearMDP` and its generators: :func:`~.mdps.definition_4_1`
  (Definition 4.1), :func:`~.mdps.rand_mdp` and :func:`~.mdps.semi_rand_mdp` (section 5.1, RAND
  and SEMI-RAND).
- ``solver``: :func:`~.solver.solve`, exact finite-horizon Q*, V*, pi* by Bellman recursion on
  piecewise-linear functions, and the closed forms of Theorem 4.2 (:func:`~.solver.def41_policy`,
  Eq. 2; :func:`~.solver.def41_value`, Eq. 3; :func:`~.solver.def41_optimal_return`).
- ``reports``: the JSON reports of one solved MDP and of piece counts over many random MDPs.
- ``cli`` (run as ``python -m lightning_mbrl.envs.piecewise_linear stats|solve``) printing JSON.

Arithmetic is float64. The solvers are exact in the sense that every piece is computed by formula
(no grid); three tolerances (``algebra``'s module constants) decide what counts as the same
breakpoint, the same piece, and a tie. For Definition 4.1 every breakpoint is a dyadic rational that
float64 holds exactly and the functions are piecewise constant with jumps of at least 2e-3 (H <= 8,
T = 2H), far above the tolerances, so its piece counts are exact (tested up to H = 8). RAND/SEMI-RAND
counts barely depend on the tolerances, except for the rare RAND MDPs whose compositions reach
slopes of 1e12 and more, whose pieces narrower than MIN_WIDTH float64 cannot place reliably (a few
percent of their count); the fractions over 100 and 1000 pieces do not move
(docs/piecewise_linear.md). See docs/piecewise_linear.md.
"""
