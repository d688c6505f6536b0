"""`rlsuite tune`: Optuna hyperparameter search whose winner is checked on fresh seeds before it is kept.

A *trial* is one configuration sampled from the agent's search space (rlsuite/search_spaces/<agent>.yaml,
RL Zoo's ranges as data). It trains K seeds on each env and scores every run with the evaluation
harness on the *validation* seeds (never the test seeds reports use); the trial's score is the IQM of
those K x envs scores, each normalised by its env's reference scores when there is more than one env.
Seeds run as rungs: after each seed (all envs) the driver reports the running IQM to Optuna's pruner
(median or successive halving), so a poor configuration stops after one or two seeds instead of being
judged on one noisy evaluation, and a good one is judged on all K.

The driver alone talks to Optuna (ask and tell) and to the results database; workers are the sweep's:
a local process pool or Ray tasks, running `run_unit` (train one seed on one env, evaluate it). The
study lives in a journal file in --out, so rerunning the same command resumes it: finished trials are
kept, a trial the driver was running when it died is picked up again, and every unit already in the
results database is reused, never retrained. A unit whose worker dies is retried once.

When the study is complete the *confirm stage* reruns the top-k configurations, the preset and the
untuned defaults on fresh training seeds and evaluates each run on the validation seeds (to pick the
winner) and on the test seeds (to report it, with bootstrap CIs). The winner is written as a preset
block (`ENV_ID:` with only the fields it changes) that `rlsuite train --config` loads.
"""

from rlsuite.tune.run import TuneSummary, run_tune
from rlsuite.tune.space import SEARCH_SPACE_DIR, Param, load_search_space, sample_params
from rlsuite.tune.spec import CONFIRM_SEED_BASE, OBJECTIVES, PRUNERS, TuneError, TuneSpec, load_tune_file
from rlsuite.tune.units import TuneUnit, UnitResult, run_unit

__all__ = ["CONFIRM_SEED_BASE", "OBJECTIVES", "PRUNERS", "SEARCH_SPACE_DIR", "Param", "TuneError", "TuneSpec",
           "TuneSummary", "TuneUnit", "UnitResult", "load_search_space", "load_tune_file", "run_tune", "run_unit",
           "sample_params"]
