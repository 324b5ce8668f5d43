"""The :class:`Search`: a checked search that trains and scores its trials in an Optuna study."""
import argparse
import copy
import logging
import math
import os
import os.path as osp
import socket
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import optuna
from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from optuna.trial import TrialState

from mmda_vpt.apis import build_runner, build_train_parser, library_of, merge_train_args
from ._report_hook import TrialReportHook
from .config_paths import PathKey, option_path, resolve_key, set_path, tied_paths
from .metrics import evaluator_metrics
from .presets import apply_preset
from .space import SearchParam
from .spec import DEFAULT_SAMPLED_TRIALS, PRUNERS, SearchSpec
from .storage import SAMPLER_START, count_trials, make_storage
from .table import format_value

__all__ = ['Search', 'search_logger', 'train_args']

_PRUNER_CLASSES = dict(none=optuna.pruners.NopPruner, median=optuna.pruners.MedianPruner,
                       halving=optuna.pruners.SuccessiveHalvingPruner,
                       hyperband=optuna.pruners.HyperbandPruner,
                       threshold=optuna.pruners.ThresholdPruner)


def search_logger(work_dir: str) -> MMLogger:
    """The search's log, ``WORK_DIR/tune.log`` (one logger per work directory and process).

    Args:
        work_dir (str): The search's work directory (created).

    Returns:
        MMLogger: The logger.
    """
    os.makedirs(work_dir, exist_ok=True)
    name = f'tune:{osp.abspath(work_dir)}:{os.getpid()}'
    if MMLogger.check_instance_created(name):
        return MMLogger.get_instance(name)
    return MMLogger.get_instance(name, log_file=osp.join(work_dir, 'tune.log'),
                                 log_level='INFO')


def train_args(config: str, work_dir: str,
               cfg_options: Optional[Mapping[str, Any]] = None) -> argparse.Namespace:
    """The options of ``tools/train.py CONFIG --work-dir WORK_DIR [--cfg-options ...]`` (all
    others their default), as :func:`mmda_vpt.apis.merge_train_args` reads them.

    Args:
        config (str): The config file.
        work_dir (str): The run's work directory.
        cfg_options (Mapping, optional): ``--cfg-options``. Defaults to None.

    Returns:
        argparse.Namespace: The options.
    """
    args = build_train_parser().parse_args([config, '--work-dir', work_dir])
    args.cfg_options = None if cfg_options is None else dict(cfg_options)
    return args


def _close_file_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)


class Search:
    """A search made ready: the base config of every trial, its parameters, sampler and pruner.

    Building one runs every check of the input (each raises a one-line ``ValueError``) and
    writes nothing.

    Args:
        spec (SearchSpec): The search (see :func:`~mmda_vpt.tune.make_spec`).
        logger (MMLogger, optional): The search's log; messages wait for
            :meth:`set_logger` when None. Defaults to None.
    """

    def __init__(self, spec: SearchSpec, logger: Optional[MMLogger] = None) -> None:
        self.spec = spec
        self.logger = logger
        self._pending: List[Tuple[str, int]] = []
        cfg = Config.fromfile(spec.config)
        library_of(cfg)
        self.replaced: List[PathKey] = []  # paths written whole (with _delete_) in best.py
        cfg.merge_from_dict(copy.deepcopy(spec.cfg_options))
        self.touched: List[PathKey] = [option_path(cfg, k) for k in spec.cfg_options]
        cfg.merge_from_dict(copy.deepcopy(spec.val_cfg_options))
        self._check_val_split(cfg)
        space = ({} if spec.preset is None else
                 apply_preset(cfg, spec.preset, self.replaced, self.log))
        space.update(spec.space)
        if not space:
            raise ValueError('nothing to search: give --space KEY=VALUES or --preset')
        self.params = []
        for name, values in space.items():
            keys = name.split('+')
            paths = []
            for key in keys:
                path = resolve_key(cfg, key)
                tied = tied_paths(cfg, path)
                if tied:
                    self.log(f'{key} also sets {", ".join(".".join(map(str, t)) for t in tied)} '
                             "(ClassBalancedSampler with mode='class_slots' draws batches of "
                             'the training batch size)')
                paths += [path] + tied
            self.params.append(SearchParam(name, keys, values, paths))
        if cfg.get('randomness', {}).get('seed') is None:
            cfg.merge_from_dict({'randomness.seed': spec.seed})
            self.touched.append(('randomness', 'seed'))
            self.log(f'the config sets no seed; every trial trains with seed {spec.seed}')
        self.metric = self._check_metric(cfg)
        self.cfg = cfg
        self.grid_size = (math.prod(len(p.values) for p in self.params)
                          if all(p.is_grid for p in self.params) else None)
        sampler = spec.sampler
        if sampler == 'auto':
            sampler = 'grid' if self.grid_size is not None else 'tpe'
        if sampler == 'grid' and self.grid_size is None:
            raise ValueError('--sampler grid needs a list of values for every key, not a range')
        self.sampler_name = sampler
        self.trials = spec.trials or self.grid_size or DEFAULT_SAMPLED_TRIALS
        self.make_pruner()  # checks the pruner and its options

    def log(self, msg: str, level: int = logging.INFO) -> None:
        """Logs to the search's log; kept until it has one (nothing is written before the
        checks pass)."""
        if self.logger is None:
            self._pending.append((msg, level))
            return
        print_log(msg, logger=self.logger, level=level)

    def set_logger(self, logger: MMLogger) -> None:
        """Sets the search's log and writes the messages kept until then."""
        self.logger = logger
        for msg, level in self._pending:
            print_log(msg, logger=logger, level=level)
        self._pending = []

    def _check_val_split(self, cfg: Config) -> None:
        missing = [k for k in ('val_dataloader', 'val_evaluator', 'val_cfg')
                   if cfg.get(k) is None]
        if missing:
            raise ValueError(f'{self.spec.config} has no validation split ({", ".join(missing)} '
                             'not set); give the config one or carve one from the training '
                             'data with --val-cfg-options')
        train = cfg.get('train_dataloader', {}).get('dataset', {})
        val = cfg.val_dataloader.get('dataset', {})
        test = (cfg.get('test_dataloader') or {}).get('dataset')
        if (isinstance(val, dict) and str(val.get('type', '')).endswith('VTABDataset')
                and isinstance(train, dict) and train.get('split') == 'train800val200'
                and val.get('split') == 'val200'):
            raise ValueError('the training split train800val200 holds the validation split '
                             'val200; search with --val-cfg-options '
                             'train_dataloader.dataset.split=train800')
        if test is not None and val == test:
            self.log('the validation dataset is the same as the test dataset in this config: '
                     'the search then tunes on the test split', logging.WARNING)

    def _check_metric(self, cfg: Config) -> Optional[str]:
        names = evaluator_metrics(cfg)
        metric = self.spec.metric
        if names is not None and not names:
            raise ValueError(f'{self.spec.config}: the validation evaluator produces no metric')
        if metric is None:
            return names[0] if names else None
        if names is not None and metric not in names:
            raise ValueError(f'--metric {metric!r}: the validation evaluator of '
                             f'{self.spec.config} produces {", ".join(names)}')
        return metric

    # -------------------------------------------------------------------- trials
    def trial_config(self, values: Mapping[str, Any], work_dir: str, name: str,
                     train_seed: Optional[int] = None) -> Config:
        """The merged config of a trial, as ``tools/train.py`` would run it (with the training
        seed ``train_seed`` where one is given)."""
        cfg = copy.deepcopy(self.cfg)
        for param in self.params:
            for path in param.paths:
                set_path(cfg._cfg_dict, path, values[param.name])
        if train_seed is not None:
            cfg.merge_from_dict({'randomness.seed': int(train_seed)})
        cfg = merge_train_args(cfg, train_args(self.spec.config, work_dir))
        cfg.experiment_name = name
        if not self.spec.keep_checkpoints and cfg.get('default_hooks', {}).get('checkpoint'):
            cfg.default_hooks.checkpoint = None
        return cfg

    def objective(self, trial: optuna.Trial) -> float:
        """Trains the trial (once per training seed) and returns its score: the last validation
        metric, averaged over the training seeds where ``train_seeds`` are given. Only the first
        seed's validations are reported to the pruner, so a pruned trial stops in its first run.
        """
        trial.set_user_attr('host', socket.gethostname())
        trial.set_user_attr('pid', os.getpid())
        trial.set_user_attr('device', os.environ.get('CUDA_VISIBLE_DEVICES'))
        values = {p.name: p.suggest(trial) for p in self.params}
        name = f'trial_{trial.number:04d}'
        work_dir = osp.join(self.spec.work_dir, 'trials', name)
        self.log(f'{name}: {values}')
        seeds = self.spec.train_seeds or [None]
        scores: List[float] = []
        spent = 0
        for index, seed in enumerate(seeds):
            run = name if seed is None else f'{name}_seed{seed}'
            cfg = self.trial_config(values, work_dir if seed is None else
                                    osp.join(work_dir, f'seed{seed}'), run, seed)
            value, steps = self._train(trial, cfg, run, spent, prune=index == 0)
            scores.append(value)
            spent += steps
            trial.set_user_attr('run', spent)
        if seeds != [None]:
            trial.set_user_attr('train_seeds', list(seeds))
            trial.set_user_attr('values', scores)
            self.log(f'{name}: {self.metric} {", ".join(format_value(v) for v in scores)} with '
                     f'seeds {list(seeds)}, mean {format_value(sum(scores) / len(scores))}')
        return sum(scores) / len(scores)

    def _train(self, trial: optuna.Trial, cfg: Config, name: str, spent: int,
               prune: bool) -> Tuple[float, int]:
        """One training run of a trial: its last validation metric and the epochs (or
        iterations) it trained; ``prune`` hands each validation to the pruner."""
        runner = build_runner(cfg)

        def report(step: int, value: float, metrics: Dict[str, float]) -> None:
            if not prune:
                return
            trial.set_user_attr('run', spent + step)
            if not math.isfinite(value):
                value = -math.inf if self.spec.direction == 'maximize' else math.inf
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f'{name} pruned after {hook.unit} {step}: '
                                         f'{hook.metric} {value:.4g}')

        hook = TrialReportHook(self.metric, report=report)
        runner.register_hook(hook)
        try:
            runner.train()
            final = runner.epoch if hook.unit == 'epoch' else runner.iter
            if hook.last_step != final:
                runner.val()  # the config validates less often: score the trained model
        finally:
            trial.set_user_attr('unit', hook.unit)
            trial.set_user_attr('metric', hook.metric)
            _close_file_handlers(runner.logger)
        if not hook.history:
            raise RuntimeError(f'{name}: no validation result')
        return hook.history[-1]['value'], final

    def optimize(self, worker: int = 0) -> None:
        """Runs trials until :attr:`trials` are finished or running (or the grid is done).

        Args:
            worker (int): The worker's index (seeds a sampled search). Defaults to 0.
        """
        study = self.open_study(worker)
        budget = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        while count_trials(study, budget) < self.trials:
            if count_trials(study, (TrialState.FAIL, )) >= self.trials:
                self.log(f'{self.trials} trials failed: the search stops', logging.ERROR)
                break
            if (self.sampler_name == 'grid' and count_trials(study, (TrialState.WAITING, )) == 0
                    and study.sampler.is_exhausted(study)):
                break
            study.optimize(self.objective, n_trials=1, gc_after_trial=True)

    # -------------------------------------------------------------------- the study
    def make_sampler(self, worker: int, start: int = 0) -> optuna.samplers.BaseSampler:
        """The sampler of worker ``worker`` in a study that holds ``start`` trials already.

        A sampled (TPE, random) search seeds worker w with ``seed + w``; a resumed one (``start``
        trials) seeds it from ``(seed, w, start)``, so that it continues with new values instead
        of proposing the first trials' values again. The grid sampler skips the grid points the
        study has visited, and every worker shuffles the grid alike.
        """
        if self.sampler_name == 'grid':
            # Every worker must shuffle the grid alike: a grid id names a point of that order.
            return optuna.samplers.GridSampler({p.name: p.values for p in self.params},
                                               seed=self.spec.seed)
        seed = self.spec.seed + worker
        if start:
            entropy = np.random.SeedSequence([self.spec.seed, worker, start])
            seed = int(entropy.generate_state(1)[0])
        if self.sampler_name == 'random':
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        """The Optuna pruner of the spec's ``pruner`` and ``pruner_options``."""
        options = dict(self.spec.pruner_options)
        kind = self.spec.pruner
        if kind not in _PRUNER_CLASSES:
            raise ValueError(f'unknown pruner {kind!r}; known: {", ".join(PRUNERS)}')
        try:
            return _PRUNER_CLASSES[kind](**options)
        except TypeError as e:
            raise ValueError(f'--pruner {kind} --pruner-options {options}: {e}')

    def open_study(self, worker: int = 0) -> optuna.Study:
        """The study, created or loaded, with the sampler of ``worker`` (see
        :meth:`make_sampler`: a loaded study's sampler continues after its trials)."""
        storage = make_storage(self.spec.storage, self.spec.heartbeat)
        study = optuna.create_study(
            study_name=self.spec.study_name, storage=storage, direction=self.spec.direction,
            sampler=self.make_sampler(worker), pruner=self.make_pruner(), load_if_exists=True)
        # Counted once by run_search for every worker: a count here would depend on whether
        # another worker has already started a trial.
        start = study.user_attrs.get(SAMPLER_START)
        if start is None:
            start = len(study.get_trials(deepcopy=False))
        if start:
            study.sampler = self.make_sampler(worker, start)
        return study

    def signature(self) -> dict:
        """What a resumed search must share with the stored one."""
        signature = dict(config=osp.abspath(self.spec.config), metric=self.metric,
                         direction=self.spec.direction,
                         space={p.name: (p.values if p.is_grid else repr(p.values))
                                for p in self.params})
        if self.spec.train_seeds:
            signature['train_seeds'] = list(self.spec.train_seeds)
        return signature
