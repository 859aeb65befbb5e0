"""Reproduction report: every paper's claims, measured from runs, with 95% intervals.

    python -m lightning_mbrl.report RUN_DIR... [--out docs/reproduction] [--reps 2000] [--seed 0]
    python -m lightning_mbrl.report benchmarks/results/reproduce benchmarks/results/*.json   # what reproduce writes

Reads run folders as ``lightning_mbrl.plot`` does: every folder holding a ``metrics.csv`` at or below a
RUN_DIR is a run, its recipe is the name of the folder it is in, and the runs of one recipe are its seeds
(one per ``seed`` in the run's ``hparams.yaml``; where a seed appears twice, e.g. in a reduced and a
paper-scale folder, the run with more frames). Every ``*.json`` below a RUN_DIR whose object has a
``"benchmark"`` key is a benchmark result (``benchmarks/results/*.json``, and the piecewise-linear
reports ``python -m benchmarks.reproduce`` writes): such results are the runs of claims about exact
computations. No RUN_DIR, or no runs in them, is fine: every claim then reads ``not run``.

Writes ``<out>.md`` (e.g. ``docs/reproduction.md``): per paper, a table of its claims, each with the
paper's figure or number, ours with a 95% interval and the number of seeds, the rule that decides the
verdict, the verdict, the command that re-creates the row's runs (``python -m benchmarks.reproduce
--only <claim>``) and the commit of those runs; learning curves of the paper's recipes (one line per
evaluator: the policy's ``eval/return``, BOOTS ``eval/boots*/return``, MPC ``eval/mpc/return``, mean over
seeds with its interval, as ``lightning_mbrl.plot`` draws them) and performance profiles of the claims
that compare groups, as PNGs in ``<out>/``; and a section on the paper-scale runs, each with its command
and an estimated cost.

**Claims** are entries of :data:`CLAIMS`: a :class:`Claim` names its paper, says the claim in one line,
gives the paper's value, a *measure* (which recipe, evaluator, frames and statistic it reads:
:class:`ReturnAt`, :class:`FramesTo`, :class:`FramesRatio`, :class:`Gain`, :class:`FractionOfOptimal`,
:class:`BenchmarkShare`, :class:`BenchmarkExact`) and a :class:`Rule` that decides the verdict from the
measured interval. Later issues add rows by adding entries (and, where new runs are needed, a
:class:`Job` to :data:`JOBS`).

**Statistics** are rliable's (``lightning_mbrl.stats``): the interquartile mean (IQM) or the mean over
seeds, each claim saying which (the mean where the paper's figure is a mean over seeds), with a 95%
stratified-bootstrap interval (2,000 resamples, seed 0: the same runs give the same report).

**Verdicts**: ``agree`` when the interval satisfies the claim's rule, ``disagree`` when it does not, and
``not run`` when there are fewer complete seeds than the claim needs: no runs, runs that have not
evaluated at the frames the claim reads (still running, or killed: a killed run keeps the rows it
logged), or a missing benchmark result. Where runs exist but are short, the table still shows ours at
the frames every seed reached, but the verdict stays ``not run``. A run killed after the frames a claim
reads does count for it: the rows it logged up to there are those of an uninterrupted run (runs resume
exactly, README "Checkpoints and resuming").

**Commit**: a run made by ``python -m benchmarks.reproduce`` records the commit it was run at (every
start of it, if resumed) in ``<run>/reproduce.json``, and a benchmark result in its ``"commit"`` key;
the runs of the recipes do not record theirs (``config.yaml`` and ``hparams.yaml`` hold the
configuration only), so for those the table gives the current ``git rev-parse --short HEAD`` and says so.

**Jobs** (:data:`JOBS`) say how each recipe's runs are made, at two scales: ``reduced`` (budgets that
fit a 2-core CPU) and ``paper`` (the papers' budgets). ``python -m benchmarks.reproduce`` runs them;
this package only reads them, for the commands and for the cost estimates of the paper-scale section.

Layout: ``claims.py`` (the registry of claims; later issues add rows there) and ``jobs.py`` (how their runs are
made, per scale, and their cost) are what the report covers; ``runs.py`` (reading run folders and results),
``measures.py`` (measures and rules) and ``writer.py`` (judging, the Markdown, the figures, the CLI) are how.
"""

from lightning_mbrl.report.runs import (discover, Found, last_frame, MARKER, read_result, read_run, REPO, Result,
                                        RESULTS, Run, SCALES)
from lightning_mbrl.report.measures import (above, at_least, at_most, below, BenchmarkExact, BenchmarkShare, contains,
                                            FractionOfOptimal, FramesRatio, FramesTo, FrozenModelGap, Gain,
                                            GradientErrorArgmin, GradientErrorGap, Measure, Measured,
                                            ModelPositionAccuracy, OnlineGap, overlaps, PredictionsHold, ReturnAt, Rule,
                                            ScoreGap, SmoothingRise, TabularAbove, TabularFractionOfOptimal)
from lightning_mbrl.report.claims import Claim, CLAIMS, PAPERS
from lightning_mbrl.report.jobs import (Cost, estimate_cost, GPU_SPEEDUP, GPU_UPDATE_MS, Job, JOBS, JOBS_BY_NAME,
                                        MBSAC_CPU_MS_PER_FRAME, paper_scale_jobs)
from lightning_mbrl.report.writer import (commit_cell, curves_figure, evaluate, git_commit, main, profiles_figure,
                                          render, Row, verdict, write_report)

