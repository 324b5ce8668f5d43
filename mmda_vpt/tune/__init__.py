"""Search hyperparameters of any config on its validation split, with Optuna.

Every trial trains the config through the stock runner (as ``tools/train.py`` does) on the
training split, with the trial's values set, and is scored on the validation split (the config's
``val_dataloader`` and ``val_evaluator``, or a split carved with ``val_cfg_options``) by one
metric of the evaluator; the test split is never used. Optuna chooses the values (a grid when
every searched key has a list of values, TPE otherwise), prunes trials on the metric of each
validation (``pruner``), and keeps the study in a storage (a SQLite file in the work directory
unless ``storage`` says otherwise), so a stopped search resumes where it stopped: finished
trials are kept, a trial left running by a killed search is marked failed and run again with
the same values, and the sampler continues (a resumed search proposes new values).

The work directory (default ``work_dirs/tune/<config name>``) holds::

    study.db                  the study (default storage)
    tune.log                  the search's log
    trials/trial_0000/ ...    each trial's work directory (logs, scalars; no checkpoints
                              unless keep_checkpoints)
    trials.md, trials.json    the table of trials: values, metric, epochs run, pruned or not
    trials.png                the metric against each searched value
    best.py                   CONFIG with the best trial's values (and cfg_options, the
                              preset's optimizer), for tools/train.py; val_cfg_options are
                              left out: they only carve the validation split

Keys of the space are short names (:data:`SHORT_NAMES`: ``lr``, ``weight_decay``, ``beta``,
``lam``, ``num_prompts``, ...) or config paths (``model.backbone.num_prompts``; a list is
indexed by position or by the ``type`` of its entries:
``custom_hooks.PromptMetricLossHook.margin``); ``beta+lam`` searches one value set to both. A
value is a list (``0,1e-4,1e-3``: a grid axis) or a range (``1e-4:1e-2:log``, ``1:20``
(integers), ``0:1:0.25`` (with a step)), sampled.

Example::

    from mmda_vpt.tune import run_search
    result = run_search(config, ['lr=1e-4:1e-2:log', 'beta+lam=0.01,0.1'], trials=20,
                        work_dir='work_dirs/tune/mine', pruner='halving')
    result.best, result.files['best_config']

``tools/tune.py`` is its command line.
"""
import importlib.util

if importlib.util.find_spec('optuna') is None:
    raise ImportError('mmda_vpt.tune needs Optuna, which is the "tune" extra: '
                      'pip install "mmda_vpt[tune]" (or pip install optuna)')

from .best_config import best_overrides, write_best_config  # noqa: E402
from .config_paths import SHORT_NAMES, resolve_key, resolve_path, tied_paths
from .metrics import evaluator_metrics
from .presets import PRESETS
from .run import run_search, write_report
from .search import Search
from .space import Range, SearchParam, parse_space
from .spec import (DEFAULT_SAMPLED_TRIALS, PRUNERS, SAMPLERS, SearchResult, SearchSpec,
                   make_spec)
from .storage import make_storage, recover_abandoned
from .workers import launch_workers, run_worker, worker_envs

__all__ = [
    'DEFAULT_SAMPLED_TRIALS', 'PRESETS', 'PRUNERS', 'SAMPLERS', 'SHORT_NAMES', 'Range', 'Search',
    'SearchParam', 'SearchResult', 'SearchSpec', 'best_overrides', 'evaluator_metrics',
    'launch_workers', 'make_spec', 'make_storage', 'parse_space', 'recover_abandoned',
    'resolve_key', 'resolve_path', 'run_search', 'run_worker', 'tied_paths', 'worker_envs',
    'write_best_config', 'write_report'
]
