"""Search hyperparameters of any config on its validation split, with Optuna.

Every trial trains the config through the stock runner (as ``tools/train.py`` does) on the
training split, with the trial's values set, and is scored on the validation split (the config's
``val_dataloader`` and ``val_evaluator``, or a split carved with ``--val-cfg-options``) by one
metric of the evaluator; the test split is never used. Optuna chooses the values (a grid when
every searched key has a list of values, TPE otherwise), prunes trials on the metric of each
validation (``--pruner``), and keeps the study in a storage (a SQLite file in the work
directory unless ``--storage`` says otherwise), so a stopped search resumes where it stopped:
finished trials are kept, a trial left running by a killed search is marked failed and run
again with the same values, and the sampler continues (a resumed search proposes new values).

The work directory (default ``work_dirs/tune/<config name>``) holds::

    study.db                  the study (default storage)
    tune.log                  this tool's log
    trials/trial_0000/ ...    each trial's work directory (logs, scalars; no checkpoints
                              unless --keep-checkpoints)
    trials.md, trials.json    the table of trials: values, metric, epochs run, pruned or not
    trials.png                the metric against each searched value
    best.py                   CONFIG with the best trial's values (and --cfg-options, the
                              preset's optimizer), for tools/train.py; --val-cfg-options are
                              left out: they only carve the validation split

Keys of ``--space`` are short names (``lr``, ``weight_decay``, ``beta``, ``lam``,
``num_prompts``, ``proxy_scale``, ... see ``--help``) or config paths (``model.backbone.
num_prompts``; a list is indexed by position or by the ``type`` of its entries:
``custom_hooks.PromptMetricLossHook.margin``); ``beta+lam`` searches one value set to both. A
value is a list (``0,1e-4,1e-3``: a grid axis) or a range (``1e-4:1e-2:log``, ``1:20``
(integers), ``0:1:0.25`` (with a step)), sampled.

Examples::

    python tools/tune.py CONFIG --space lr=1e-4:1e-2:log weight_decay=0,1e-4,1e-3 --trials 20
    python tools/tune.py CONFIG --preset davpt --pruner halving
    python tools/tune.py CONFIG --space lr=1e-3,1e-2 --train-seeds 0 1 2   # mean of 3 seeds
    python tools/tune.py CONFIG --preset vpt-prompt --gpus 0,1,2,3
    python tools/tune.py VTAB_CONFIG --preset davpt \\
        --val-cfg-options train_dataloader.dataset.split=train800

From Python: ``run_search(config, ['lr=1e-4:1e-2:log'], trials=20, work_dir=...)`` (import
this file with ``importlib``); it returns a :class:`SearchResult`.
"""
import argparse
import copy
import logging
import math
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import optuna
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import MMLogger, print_log
from optuna.trial import TrialState

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import train as train_tool  # noqa: E402  (tools/train.py: the stock runner, as it builds it)

from mmda_vpt.engine.hooks.trial_report_hook import TrialReportHook  # noqa: E402

__all__ = [
    'PRESETS', 'SHORT_NAMES', 'Range', 'Search', 'SearchParam', 'SearchResult', 'SearchSpec',
    'best_overrides', 'evaluator_metrics', 'launch_workers', 'main', 'make_spec', 'make_storage',
    'parse_args', 'parse_space', 'recover_abandoned', 'resolve_path', 'run_search', 'run_worker',
    'tied_paths', 'worker_envs', 'write_best_config'
]

TOOL = osp.abspath(__file__)
_PML = 'custom_hooks.PromptMetricLossHook'
_CPM = 'custom_hooks.ClassPromptMappingHook'

#: Short name -> the config path it sets.
SHORT_NAMES: Dict[str, str] = {
    'lr': 'optim_wrapper.optimizer.lr',
    'weight_decay': 'optim_wrapper.optimizer.weight_decay',
    'momentum': 'optim_wrapper.optimizer.momentum',
    'batch_size': 'train_dataloader.batch_size',
    'beta': f'{_PML}.beta',
    'lam': f'{_PML}.lam',
    'margin': f'{_PML}.margin',
    'alpha': f'{_PML}.alpha',
    'proxy_scale': f'{_PML}.proxy_scale',
    'patch_topk': f'{_PML}.patch_topk',
    'samples_per_class': f'{_CPM}.samples_per_class',
    'first_update': f'{_CPM}.first_update',
    'num_prompts': 'model.backbone.num_prompts',
    'num_guided_prompts': 'model.backbone.num_guided_prompts',
    'prompt_dropout': 'model.backbone.prompt_dropout',
    'frozen_drop_path_rate': 'model.backbone.frozen_drop_path_rate',
}

_VPT_WD = [0.01, 0.001, 0.0001, 0.0]
_VPT_PROMPT_LR = [50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1]

#: The presets: their space and, for VPT's, the optimizer they switch to. VPT's learning rates
#: are base rates, scaled by the training batch size / 256 (KMnP/vpt tune_fgvc.py and
#: tune_vtab.py); the authors of DA-VPT search AdamW's lr, weight decay and beta = lambda.
PRESETS: Dict[str, dict] = {
    'vpt-prompt': dict(space={'lr': _VPT_PROMPT_LR, 'weight_decay': _VPT_WD}, sgd=True),
    'vpt-linear': dict(space={'lr': _VPT_PROMPT_LR + [0.05], 'weight_decay': _VPT_WD}, sgd=True),
    'davpt': dict(space={'lr': [1e-4, 5e-4, 1e-3, 5e-3, 1e-2],
                         'weight_decay': [0.0, 1e-4, 1e-2, 0.05],
                         'beta+lam': [0.01, 0.05, 0.1]}, sgd=False),
}

PRUNERS = ('none', 'median', 'halving', 'hyperband', 'threshold')
SAMPLERS = ('auto', 'grid', 'tpe', 'random')
DEFAULT_SAMPLED_TRIALS = 20

PathKey = Tuple[Union[str, int], ...]


@dataclass(frozen=True)
class Range:
    """A range to sample from: integers when ``low`` and ``high`` are ints.

    Args:
        low (float): Lower bound (included).
        high (float): Upper bound (included).
        log (bool): Sample on a log scale. Defaults to False.
        step (float, optional): Spacing of the values. Defaults to None.
    """
    low: float
    high: float
    log: bool = False
    step: Optional[float] = None

    @property
    def integer(self) -> bool:
        return (isinstance(self.low, int) and isinstance(self.high, int)
                and (self.step is None or isinstance(self.step, int)))


@dataclass
class SearchParam:
    """One searched value of the study and the config paths it sets.

    Attributes:
        name: Its name in the study, as given (``'lr'``, ``'beta+lam'``, a config path).
        keys: The short names or config paths it sets.
        values: The list of values of a grid axis, or a :class:`Range`.
        paths: The resolved config paths, one per key and the paths tied to it (see
            :func:`tied_paths`).
    """
    name: str
    keys: List[str]
    values: Union[List[Any], Range]
    paths: List[PathKey] = field(default_factory=list)

    @property
    def is_grid(self) -> bool:
        return isinstance(self.values, list)

    def suggest(self, trial: optuna.Trial) -> Any:
        """The trial's value of this parameter."""
        if self.is_grid:
            return trial.suggest_categorical(self.name, self.values)
        r = self.values
        if r.integer:
            return trial.suggest_int(self.name, r.low, r.high, step=r.step or 1, log=r.log)
        return trial.suggest_float(self.name, float(r.low), float(r.high), step=r.step,
                                   log=r.log)


@dataclass
class SearchSpec:
    """Everything that defines a search; pickled into the work directory for the workers."""
    config: str
    space: Dict[str, Any]
    preset: Optional[str]
    work_dir: str
    trials: Optional[int]
    metric: Optional[str]
    direction: str
    sampler: str
    pruner: str
    pruner_options: Dict[str, Any]
    storage: str
    study_name: str
    cfg_options: Dict[str, Any]
    val_cfg_options: Dict[str, Any]
    seed: int
    keep_checkpoints: bool
    heartbeat: Optional[int]
    train_seeds: Optional[List[int]] = None


@dataclass
class SearchResult:
    """What a search leaves: the table rows, the best trial and the files written.

    Attributes:
        work_dir: The search's work directory.
        metric: The metric that scored the trials.
        direction: ``'maximize'`` or ``'minimize'``.
        rows: One dict per trial (as in ``trials.json``).
        best: ``dict(number=..., value=..., params=...)`` of the best completed trial, or None.
        files: ``'table_md'``, ``'table_json'``, ``'picture'``, ``'best_config'`` -> path
            (``best_config`` only with a completed trial).
    """
    work_dir: str
    metric: str
    direction: str
    rows: List[dict]
    best: Optional[dict]
    files: Dict[str, str]


# ------------------------------------------------------------------------------ the space
def _scalar(text: str) -> Any:
    """A number, bool, None or string from the command line."""
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ('true', 'false'):
        return lowered == 'true'
    if lowered in ('none', 'null'):
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '\'"':
        return text[1:-1]
    return text


def _parse_values(key: str, text: str) -> Union[List[Any], Range]:
    """``a,b,c`` -> a list; ``low:high[:log|:step]`` -> a :class:`Range`; ``a`` -> ``[a]``."""
    if ',' in text or ':' not in text:
        values = [_scalar(v) for v in text.split(',') if v.strip() != '']
        if not values:
            raise ValueError(f'{key}: no values given')
        return values
    parts = text.split(':')
    if len(parts) not in (2, 3):
        raise ValueError(f'{key}={text}: a range is low:high, low:high:log or low:high:step')
    low, high = _scalar(parts[0]), _scalar(parts[1])
    log, step = False, None
    if len(parts) == 3:
        if parts[2].strip().lower() == 'log':
            log = True
        else:
            step = _scalar(parts[2])
    return _check_range(key, Range(low, high, log, step))


def _check_range(key: str, r: Range) -> Range:
    for name in ('low', 'high') + (('step', ) if r.step is not None else ()):
        value = getattr(r, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f'{key}: the range\'s {name} {value!r} is not a number')
    if r.low > r.high:
        raise ValueError(f'{key}: the range\'s low {r.low} is above its high {r.high}')
    if r.log and r.low <= 0:
        raise ValueError(f'{key}: a log range needs low > 0, got {r.low}')
    if r.step is not None and (r.step <= 0 or r.log):
        raise ValueError(f'{key}: a range\'s step must be > 0 and not with log')
    return r


def _check_choices(key: str, values: List[Any]) -> List[Any]:
    for value in values:
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise ValueError(f'{key}: a listed value must be a number, string, bool or None, '
                             f'got {value!r}')
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f'{key}: a value is listed twice in {values}')
    return list(values)


def parse_space(space: Union[Sequence[str], Mapping[str, Any], None]) -> Dict[str, Any]:
    """The search space as ``name -> list of values or Range``.

    Args:
        space (Sequence[str] | Mapping, optional): ``'key=values'`` strings (see the module's
            doc) or a mapping of key to a list, a :class:`Range`, a ``'values'`` string or a
            single value.

    Returns:
        dict: Name -> list of values (a grid axis) or :class:`Range`.

    Raises:
        ValueError: On a malformed item, a key given twice or a bad range.
    """
    parsed: Dict[str, Any] = {}
    if space is None:
        return parsed
    if isinstance(space, Mapping):
        items = list(space.items())
    else:
        items = []
        for item in space:
            if '=' not in item:
                raise ValueError(f'--space item {item!r} is not KEY=VALUES')
            key, text = item.split('=', 1)
            items.append((key.strip(), text))
    for key, value in items:
        if key in parsed:
            raise ValueError(f'{key}: given twice in the space')
        if isinstance(value, str):
            value = _parse_values(key, value)
        elif isinstance(value, Range):
            value = _check_range(key, value)
        elif isinstance(value, (list, tuple)):
            value = list(value)
        else:
            value = [value]
        parsed[key] = _check_choices(key, value) if isinstance(value, list) else value
    return parsed


# ------------------------------------------------------------------------------ config paths
def _type_matches(item: Any, name: str) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get('type'), str):
        return False
    return item['type'] == name or item['type'].split('.')[-1] == name


def resolve_path(cfg: Config, key: str, new_leaf: bool = False) -> PathKey:
    """The components of a dotted config path, checked against ``cfg``.

    At a dict the longest run of components that is one of its keys is taken (so a key with
    dots, such as ``custom_keys``' ``'head.fc.weight'``, is one component); at a list a
    component is an index or the ``type`` of an entry.

    Args:
        cfg (Config): The config.
        key (str): The dotted path.
        new_leaf (bool): Allow the last component to be missing from its dict.
            Defaults to False.

    Returns:
        tuple: The path's keys and indices.

    Raises:
        KeyError: If the path does not exist in ``cfg``.
    """
    parts = key.split('.')
    node: Any = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    path: List[Union[str, int]] = []
    i = 0
    while i < len(parts):
        where = '.'.join(map(str, path)) or 'the config'
        if isinstance(node, dict):
            for j in range(len(parts), i, -1):
                name = '.'.join(parts[i:j])
                if name in node:
                    break
            else:
                if new_leaf and i == len(parts) - 1:
                    path.append(parts[i])
                    return tuple(path)
                raise KeyError(f'no {parts[i]!r} in {where}')
            path.append(name)
            node = node[name]
            i = j
        elif isinstance(node, (list, tuple)):
            comp = parts[i]
            if comp.lstrip('-').isdigit():
                index = int(comp)
                if not -len(node) <= index < len(node):
                    raise KeyError(f'{where} has {len(node)} entries, no index {index}')
            else:
                matches = [k for k, item in enumerate(node) if _type_matches(item, comp)]
                if not matches:
                    raise KeyError(f'no {comp} in {where}')
                index = matches[0]
            path.append(index)
            node = node[index]
            i += 1
        else:
            raise KeyError(f'{where} is a {type(node).__name__}, not a dict or a list')
    return tuple(path)


def _get(cfg: Any, path: PathKey) -> Any:
    node = cfg
    for comp in path:
        node = node[comp]
    return node


def _set(cfg: Any, path: PathKey, value: Any) -> None:
    node = cfg
    for comp in path[:-1]:
        node = node[comp]
    node[path[-1]] = value


#: The training batch size and the config paths that must hold the same value.
_TRAIN_BATCH = ('train_dataloader', 'batch_size')
_SLOTS_SAMPLER_BATCH = ('train_dataloader', 'sampler', 'batch_size')


def tied_paths(cfg: Config, path: PathKey) -> List[PathKey]:
    """The config paths a searched value at ``path`` must set together with it.

    ``train_dataloader.batch_size`` (the short name ``batch_size``) also sets
    ``train_dataloader.sampler.batch_size`` when the sampler is a ``ClassBalancedSampler`` with
    ``mode='class_slots'``, which draws batches of its own ``batch_size`` and needs the
    dataloader's.

    Args:
        cfg (Config): The config.
        path (tuple): A resolved path.

    Returns:
        list: The tied paths (none for most).
    """
    if tuple(path) != _TRAIN_BATCH:
        return []
    sampler = cfg._cfg_dict.get('train_dataloader', {}).get('sampler')
    if _type_matches(sampler, 'ClassBalancedSampler') and sampler.get('mode') == 'class_slots':
        return [_SLOTS_SAMPLER_BATCH]
    return []


def _resolve_key(cfg: Config, key: str) -> PathKey:
    """A short name's or config path's resolved path, or a one-line ``ValueError``."""
    if key in SHORT_NAMES:
        try:
            return resolve_path(cfg, SHORT_NAMES[key], new_leaf=True)
        except KeyError as e:
            parts = SHORT_NAMES[key].split('.')
            if parts[0] == 'custom_hooks':
                raise ValueError(f'{key} ({SHORT_NAMES[key]}): no {parts[1]} in custom_hooks of '
                                 f'{cfg.filename}')
            raise ValueError(f'{key} ({SHORT_NAMES[key]}): {e.args[0]} of {cfg.filename}')
    try:
        return resolve_path(cfg, key)
    except KeyError as e:
        if '.' not in key:
            raise ValueError(f'unknown key {key!r}: not a short name ({", ".join(SHORT_NAMES)}) '
                             f'nor a key of {cfg.filename}')
        raise ValueError(f'unknown key {key!r}: {e.args[0]} of {cfg.filename} (a searched '
                         'config path must exist in the config; set it with --cfg-options to '
                         'search it)')


# ------------------------------------------------------------------------------ metrics
def evaluator_metrics(cfg: Config) -> Optional[List[str]]:
    """The metric names the validation evaluator produces, in order, where known.

    Known: mmpretrain's ``Accuracy`` and mmsegmentation's ``IoUMetric``; None for any other
    evaluator (its metric is then checked at the first validation).

    Args:
        cfg (Config): The config.

    Returns:
        list[str] | None: The names, or None when an evaluator is not one of those.
    """
    evaluator = cfg.get('val_evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator and 'type' not in evaluator:
        evaluator = evaluator['metrics']
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    names: List[str] = []
    for metric in metrics:
        if not isinstance(metric, dict):
            return None
        kind = str(metric.get('type', '')).split('.')[-1]
        if kind == 'Accuracy':
            prefix = metric.get('prefix') or 'accuracy'
            topk = metric.get('topk', (1, ))
            topk = (topk, ) if isinstance(topk, int) else tuple(topk)
            thrs = metric.get('thrs', 0.)
            thrs = (thrs, ) if thrs is None or isinstance(thrs, (int, float)) else tuple(thrs)
            for k in topk:
                for thr in thrs:
                    name = f'top{k}'
                    if len(thrs) > 1:
                        name += '_no-thr' if thr is None else f'_thr-{thr:.2f}'
                    names.append(f'{prefix}/{name}')
        elif kind == 'IoUMetric':
            prefix = metric.get('prefix')
            iou = metric.get('iou_metrics', ['mIoU'])
            iou = [iou] if isinstance(iou, str) else list(iou)
            # The first configured one first: the default metric.
            found = [iou[0]] + [m for m in ('aAcc', 'mIoU', 'mAcc', 'mDice', 'mFscore',
                                            'mPrecision', 'mRecall')
                                if m != iou[0] and _iou_produces(iou, m)]
            names += [f'{prefix}/{m}' if prefix else m for m in found]
        else:
            return None
    return names


def _iou_produces(iou_metrics: List[str], name: str) -> bool:
    produced = {'aAcc'}
    for m in iou_metrics:
        produced |= {'mIoU': {'mIoU', 'mAcc'}, 'mDice': {'mDice', 'mAcc'},
                     'mFscore': {'mFscore', 'mPrecision', 'mRecall'}}.get(m, set())
    return name in produced


# ------------------------------------------------------------------------------ preparation
def _logger(work_dir: str) -> MMLogger:
    os.makedirs(work_dir, exist_ok=True)
    name = f'tune:{osp.abspath(work_dir)}:{os.getpid()}'
    if MMLogger.check_instance_created(name):
        return MMLogger.get_instance(name)
    return MMLogger.get_instance(name, log_file=osp.join(work_dir, 'tune.log'),
                                 log_level='INFO')


class Search:
    """A search made ready: the base config of every trial, its parameters, sampler and pruner.

    Building one runs every check of the input (each raises a one-line ``ValueError``) and
    writes nothing.

    Args:
        spec (SearchSpec): The search (see :func:`make_spec`).
        logger (MMLogger, optional): The search's log; messages wait for
            :meth:`set_logger` when None. Defaults to None.
    """

    def __init__(self, spec: SearchSpec, logger: Optional[MMLogger] = None) -> None:
        self.spec = spec
        self.logger = logger
        self._pending: List[Tuple[str, int]] = []
        cfg = Config.fromfile(spec.config)
        train_tool.library_of(cfg)
        self.replaced: List[PathKey] = []  # paths written whole (with _delete_) in best.py
        cfg.merge_from_dict(copy.deepcopy(spec.cfg_options))
        self.touched: List[PathKey] = [self._option_path(cfg, k) for k in spec.cfg_options]
        cfg.merge_from_dict(copy.deepcopy(spec.val_cfg_options))
        self._check_val_split(cfg)
        space = self._apply_preset(cfg)
        space.update(spec.space)
        if not space:
            raise ValueError('nothing to search: give --space KEY=VALUES or --preset')
        self.params = []
        for name, values in space.items():
            keys = name.split('+')
            paths = []
            for key in keys:
                path = _resolve_key(cfg, key)
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
        self.logger = logger
        for msg, level in self._pending:
            print_log(msg, logger=logger, level=level)
        self._pending = []

    @staticmethod
    def _option_path(cfg: Config, key: str) -> PathKey:
        """The path ``merge_from_dict`` gives an option key (list indices as ints)."""
        node: Any = cfg._cfg_dict
        path: List[Union[str, int]] = []
        for comp in key.split('.'):
            if isinstance(node, (list, tuple)) and comp.lstrip('-').isdigit():
                comp = int(comp)
            path.append(comp)
            try:
                node = node[comp]
            except (KeyError, IndexError, TypeError):
                node = None
        return tuple(path)

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

    def _apply_preset(self, cfg: Config) -> Dict[str, Any]:
        preset = self.spec.preset
        if preset is None:
            return {}
        if preset not in PRESETS:
            raise ValueError(f'unknown preset {preset!r}; known: {", ".join(PRESETS)}')
        space = {k: list(v) for k, v in PRESETS[preset]['space'].items()}
        if PRESETS[preset]['sgd']:
            batch = cfg.train_dataloader.batch_size
            old = cfg.optim_wrapper.optimizer
            cfg.optim_wrapper.optimizer = ConfigDict(
                type='SGD', lr=old.get('lr', 0.1), momentum=0.9,
                weight_decay=old.get('weight_decay', 0.0))
            self.replaced.append(('optim_wrapper', 'optimizer'))
            space['lr'] = [float(f'{v * batch / 256:.6g}') for v in space['lr']]
            self.log(f'preset {preset}: the optimizer {old.get("type")} becomes SGD with '
                     f'momentum 0.9 (VPT\'s), lr = VPT\'s base lr x batch {batch} / 256: '
                     f'{space["lr"]}; weight decay {space["weight_decay"]}', logging.WARNING)
        else:
            self.log(f'preset {preset}: {space} with the config\'s '
                     f'{cfg.optim_wrapper.optimizer.get("type")}')
        return space

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
                _set(cfg._cfg_dict, path, values[param.name])
        if train_seed is not None:
            cfg.merge_from_dict({'randomness.seed': int(train_seed)})
        args = train_tool.parse_args([self.spec.config, '--work-dir', work_dir])
        cfg = train_tool.merge_args(cfg, args)
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
            self.log(f'{name}: {self.metric} {", ".join(_fmt(v) for v in scores)} with seeds '
                     f'{list(seeds)}, mean {_fmt(sum(scores) / len(scores))}')
        return sum(scores) / len(scores)

    def _train(self, trial: optuna.Trial, cfg: Config, name: str, spent: int,
               prune: bool) -> Tuple[float, int]:
        """One training run of a trial: its last validation metric and the epochs (or
        iterations) it trained; ``prune`` hands each validation to the pruner."""
        runner = train_tool.build_runner(cfg)

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
        options = dict(self.spec.pruner_options)
        kind = self.spec.pruner
        classes = dict(none=optuna.pruners.NopPruner, median=optuna.pruners.MedianPruner,
                       halving=optuna.pruners.SuccessiveHalvingPruner,
                       hyperband=optuna.pruners.HyperbandPruner,
                       threshold=optuna.pruners.ThresholdPruner)
        if kind not in classes:
            raise ValueError(f'unknown pruner {kind!r}; known: {", ".join(PRUNERS)}')
        try:
            return classes[kind](**options)
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


def _close_file_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            logger.removeHandler(handler)


def _retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue the values of a failed (abandoned) trial again."""
    study.enqueue_trial(trial.params, user_attrs={'retry_of': trial.number})


def make_storage(url: str, heartbeat: Optional[int] = 60) -> optuna.storages.BaseStorage:
    """An Optuna storage from ``--storage``.

    Args:
        url (str): A database URL (``sqlite:///path.db``, ``postgresql://...``, ``mysql://...``:
            Optuna's RDB storage, with heartbeats), or ``journal:PATH`` / a path ending in
            ``.log`` (Optuna's journal file, e.g. on storage shared by several hosts).
        heartbeat (int, optional): Seconds between a running trial's heartbeats in an RDB
            storage; a trial without one for 3 intervals is failed and queued again by the
            next trial of any worker. None disables them. Defaults to 60.

    Returns:
        optuna.storages.BaseStorage: The storage.
    """
    if url.startswith('journal:') or url.endswith('.log'):
        from optuna.storages.journal import JournalFileBackend
        path = url[len('journal:'):] if url.startswith('journal:') else url
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    kwargs: Dict[str, Any] = {}
    if url.startswith('sqlite'):
        kwargs['engine_kwargs'] = dict(connect_args=dict(timeout=120))
    if heartbeat:
        kwargs.update(heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                      heartbeat_stale_trial_callback=_retry)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, **kwargs)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_abandoned(study: optuna.Study, log) -> List[int]:
    """Fail the running trials of dead processes of this host and queue their values again.

    A trial of another host is left to the heartbeats of an RDB storage.

    Args:
        study (optuna.Study): The study.
        log (callable): ``log(message)``.

    Returns:
        list[int]: The numbers of the trials failed.
    """
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, )):
        attrs = trial.user_attrs
        if attrs.get('host', host) != host:
            continue
        if 'pid' in attrs and _pid_alive(int(attrs['pid'])) and attrs['pid'] != os.getpid():
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):
            continue  # finished meanwhile
        _retry(study, trial)
        failed.append(trial.number)
        log(f'trial {trial.number} {trial.params} was left running by a stopped search: '
            'marked failed and queued again')
    return failed


#: Study attribute: the trials the study held when this search (re)started, which seeds the
#: samplers of every worker alike (see :meth:`Search.make_sampler`).
SAMPLER_START = 'sampler_start'


def _count(study: optuna.Study, states: Sequence[TrialState]) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def _optimize(search: Search, worker: int = 0) -> None:
    """Run trials until ``search.trials`` are finished or running (or the grid is done)."""
    study = search.open_study(worker)
    budget = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    while _count(study, budget) < search.trials:
        if _count(study, (TrialState.FAIL, )) >= search.trials:
            search.log(f'{search.trials} trials failed: the search stops', logging.ERROR)
            break
        if (search.sampler_name == 'grid' and _count(study, (TrialState.WAITING, )) == 0
                and study.sampler.is_exhausted(study)):
            break
        study.optimize(search.objective, n_trials=1, gc_after_trial=True)


# ------------------------------------------------------------------------------ workers
def worker_envs(gpus: Sequence[str], base: Optional[Mapping[str, str]] = None) -> List[dict]:
    """The environment of each worker process: the caller's, seeing only its own GPU.

    Args:
        gpus (Sequence[str]): GPU ids, one worker per id.
        base (Mapping, optional): The environment to start from; the process's when None.
            Defaults to None.

    Returns:
        list[dict]: One environment per worker.
    """
    base = dict(os.environ if base is None else base)
    return [dict(base, CUDA_VISIBLE_DEVICES=str(gpu)) for gpu in gpus]


def launch_workers(spec_file: str, gpus: Sequence[str], work_dir: str) -> List[int]:
    """Runs one worker process per GPU on the pickled search and waits for them.

    Args:
        spec_file (str): The pickled :class:`SearchSpec`.
        gpus (Sequence[str]): GPU ids.
        work_dir (str): Where each worker's output goes (``worker_<gpu>.log``).

    Returns:
        list[int]: The exit codes of the workers.
    """
    procs = []
    for index, (gpu, env) in enumerate(zip(gpus, worker_envs(gpus))):
        out = open(osp.join(work_dir, f'worker_{gpu}.log'), 'a')
        procs.append((subprocess.Popen(
            [sys.executable, TOOL, '--worker', spec_file, '--worker-index', str(index)],
            env=env, stdout=out, stderr=subprocess.STDOUT), out))
    codes = []
    for proc, out in procs:
        codes.append(proc.wait())
        out.close()
    return codes


def _spec_to_plain(spec: SearchSpec) -> dict:
    """The spec as built-in types only (the tool may be imported under any module name)."""
    plain = dict(vars(spec))
    plain['space'] = {k: (v if isinstance(v, list) else
                          dict(range=(v.low, v.high, v.log, v.step)))
                      for k, v in spec.space.items()}
    return plain


def _spec_from_plain(plain: dict) -> SearchSpec:
    plain = dict(plain)
    plain['space'] = {k: (v if isinstance(v, list) else Range(*v['range']))
                      for k, v in plain['space'].items()}
    return SearchSpec(**plain)


def run_worker(spec_file: str, index: int = 0) -> None:
    """The body of a worker process: trials of the pickled search until its budget is spent.

    Args:
        spec_file (str): The pickled :class:`SearchSpec`.
        index (int): The worker's index (seeds a sampled search). Defaults to 0.
    """
    with open(spec_file, 'rb') as f:
        spec = _spec_from_plain(pickle.load(f))
    search = Search(spec)
    search.set_logger(_logger(spec.work_dir))
    _optimize(search, worker=index)


# ------------------------------------------------------------------------------ results
def _rows(study: optuna.Study, search: Search) -> List[dict]:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        value = trial.value
        if value is None and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        rows.append(dict(
            trial=trial.number, state=trial.state.name.lower(),
            params={p.name: trial.params.get(p.name) for p in search.params},
            metric=value, run=trial.user_attrs.get('run'),
            unit=trial.user_attrs.get('unit', 'epoch'),
            pruned=trial.state == TrialState.PRUNED, device=trial.user_attrs.get('device'),
            retry_of=trial.user_attrs.get('retry_of'),
            train_seeds=trial.user_attrs.get('train_seeds'),
            values=trial.user_attrs.get('values')))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    return '-' if value is None else str(value)


def _table_md(rows: List[dict], search: Search, best: Optional[dict]) -> str:
    unit = rows[0]['unit'] if rows else 'epoch'
    names = [p.name for p in search.params]
    seeds = search.spec.train_seeds
    metric = search.metric or 'metric'
    head = ['trial', *names, f'{metric} (mean over seeds {", ".join(map(str, seeds))})'
            if seeds else metric, *(['per seed'] if seeds else []), f'{unit}s run', 'pruned',
            'state']
    lines = [f'# {osp.basename(search.spec.config)}: {len(rows)} trials, {search.metric} '
             f'({search.spec.direction}) on the validation split', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in rows:
        mark = '**' if best is not None and row['trial'] == best['number'] else ''
        cells = [f'{mark}{row["trial"]}{mark}', *(_fmt(row['params'][n]) for n in names),
                 _fmt(row['metric']),
                 *([' / '.join(map(_fmt, row['values'] or [])) or '-'] if seeds else []),
                 _fmt(row['run']), 'yes' if row['pruned'] else 'no',
                 row['state']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    if best is not None:
        lines += ['', f'Best: trial {best["number"]}, {search.metric} {_fmt(best["value"])}, '
                  f'{best["params"]}.']
    return '\n'.join(lines) + '\n'


def _picture(rows: List[dict], search: Search, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    params = search.params
    fig, axes = plt.subplots(1, len(params), figsize=(4 * len(params), 3.4), squeeze=False)
    for ax, param in zip(axes[0], params):
        for pruned, marker, label in ((False, 'o', 'completed'), (True, 'x', 'pruned')):
            points = [(r['params'][param.name], r['metric']) for r in rows
                      if r['pruned'] == pruned and r['metric'] is not None
                      and r['state'] in ('complete', 'pruned')]
            if not points:
                continue
            xs = [x for x, _ in points]
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
                order = [repr(v) for v in (param.values if param.is_grid else sorted(set(xs)))]
                xs = [order.index(repr(x)) for x in xs]
                ax.set_xticks(range(len(order)), order, rotation=30)
            ax.scatter(xs, [y for _, y in points], marker=marker, label=label)
        numeric = [r['params'][param.name] for r in rows
                   if isinstance(r['params'].get(param.name), (int, float))]
        if (not param.is_grid and param.values.log) or (
                numeric and min(numeric) > 0 and max(numeric) / min(numeric) >= 10):
            ax.set_xscale('log')
        ax.set_xlabel(param.name)
        ax.set_ylabel(f'{search.metric} (val)')
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f'{osp.basename(search.spec.config)}: {len(rows)} trials', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _py(value: Any, indent: int = 0) -> str:
    """Python source of a config value (``dict(...)`` where the keys allow it)."""
    pad = ' ' * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return 'dict()'
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            items = [f'{k}={_py(v, indent + 4)}' for k, v in value.items()]
            return 'dict(\n' + ''.join(f'{pad}{i},\n' for i in items) + ' ' * indent + ')'
        items = [f'{k!r}: {_py(v, indent + 4)}' for k, v in value.items()]
        return '{\n' + ''.join(f'{pad}{i},\n' for i in items) + ' ' * indent + '}'
    if isinstance(value, (list, tuple)):
        inner = [_py(v, indent + 4) for v in value]
        o, c = ('[', ']') if isinstance(value, list) else ('(', ')')
        if isinstance(value, tuple) and len(value) == 1:
            return f'({inner[0]}, )'
        if all('\n' not in i for i in inner) and sum(map(len, inner)) < 80:
            return o + ', '.join(inner) + c
        return o + '\n' + ''.join(f'{pad}{i},\n' for i in inner) + ' ' * indent + c
    return repr(value)


def best_overrides(search: Search, values: Mapping[str, Any]) -> Dict[str, Any]:
    """The nested overrides that turn CONFIG into the trial with ``values``.

    Dicts are written down to the changed keys (a child config merges them); a list on the
    way, such as ``custom_hooks``, is written whole (a child config replaces lists).
    """
    cfg = copy.deepcopy(search.cfg)
    for param in search.params:
        for path in param.paths:
            _set(cfg._cfg_dict, path, values[param.name])
    tree: Dict[str, Any] = {}
    whole: set = set()
    paths = [(p, True) for p in search.replaced] + [(p, False) for p in search.touched] + [
        (path, False) for param in search.params for path in param.paths]
    for path, replace in sorted(paths, key=lambda x: len(x[0])):
        node, out = cfg._cfg_dict, tree
        for depth, comp in enumerate(path):
            prefix = path[:depth + 1]
            if any(prefix[:len(w)] == w for w in whole):
                break
            try:
                value = node[comp]
            except (KeyError, IndexError, TypeError):
                break  # an option that deleted what it named
            if depth == len(path) - 1 or isinstance(value, (list, tuple)):
                value = _plain(value.to_dict() if isinstance(value, ConfigDict) else value)
                if replace and isinstance(value, dict):
                    value = dict(_delete_=True, **value)
                out[comp] = value
                whole.add(prefix)
                break
            out = out.setdefault(comp, {})
            node = value
    return tree


def write_best_config(search: Search, best: dict, path: str) -> None:
    """Writes ``best.py``: ``_base_ = CONFIG`` and the overrides of :func:`best_overrides`.

    Args:
        search (Search): The search.
        best (dict): ``dict(number=..., value=..., params=..., finished=...)``.
        path (str): The file to write.
    """
    tree = best_overrides(search, best['params'])
    config, here = osp.abspath(search.spec.config), osp.dirname(osp.abspath(path))
    # Relative when both live in one tree (a repository's configs/ and work_dirs/).
    base = config if osp.commonpath([config, here]) == os.sep else osp.relpath(config, here)
    val_opts = ' '.join(f'{k}={_opt(v)}' for k, v in search.spec.val_cfg_options.items())
    lines = [
        f'# Written by tools/tune.py: the best of {best["finished"]} finished trials of the '
        f'search in {search.spec.work_dir},',
        f'# trial {best["number"]}, {search.metric} {_fmt(best["value"])} on the validation '
        f'split, with {best["params"]}.',
    ]
    if search.spec.train_seeds:
        lines += [f'# Each trial was scored by the mean over training seeds '
                  f'{list(search.spec.train_seeds)}.']
    if val_opts:
        lines += ['# The search carved its validation split with --val-cfg-options, left out '
                  'here (this trains on', '# the full training split); to reproduce the trial '
                  f'add: --cfg-options {val_opts}']
    lines += [f'_base_ = {base!r}', '']
    for key, value in tree.items():
        lines.append(f'{key} = {_py(value)}')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def _opt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        o, c = ('[', ']') if isinstance(value, list) else ('(', ')')
        return f'"{o}{",".join(_opt(v) for v in value)}{c}"'
    return str(value)


def report(search: Search, study: optuna.Study) -> SearchResult:
    """Write the table, the picture and ``best.py`` of the study; returns the result."""
    import json
    rows = _rows(study, search)
    finished = [r for r in rows if r['state'] in ('complete', 'pruned')]
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, ))]
    best = None
    if complete:
        pick = max if search.spec.direction == 'maximize' else min
        trial = pick(complete, key=lambda t: t.value)
        best = dict(number=trial.number, value=trial.value, params=dict(trial.params),
                    finished=len(finished))
    metric = search.metric or next((t.user_attrs.get('metric') for t in complete), None)
    search.metric = metric
    work_dir = search.spec.work_dir
    files = dict(table_md=osp.join(work_dir, 'trials.md'),
                 table_json=osp.join(work_dir, 'trials.json'),
                 picture=osp.join(work_dir, 'trials.png'))
    with open(files['table_md'], 'w') as f:
        f.write(_table_md(rows, search, best))
    with open(files['table_json'], 'w') as f:
        json.dump(dict(config=search.spec.config, metric=metric,
                       direction=search.spec.direction, study=search.spec.study_name,
                       storage=search.spec.storage, rows=rows, best=best), f, indent=1)
    _picture(rows, search, files['picture'])
    if best is not None:
        files['best_config'] = osp.join(work_dir, 'best.py')
        write_best_config(search, best, files['best_config'])
        search.log(f'best: trial {best["number"]}, {metric} {_fmt(best["value"])}, '
                   f'{best["params"]}; config {files["best_config"]}')
    else:
        search.log('no trial completed: no best.py', logging.WARNING)
    search.log(f'{len(rows)} trials ({len(finished)} finished): {files["table_md"]}')
    return SearchResult(work_dir, metric, search.spec.direction, rows, best, files)


# ------------------------------------------------------------------------------ entry points
def run_search(config: str,
               space: Union[Sequence[str], Mapping[str, Any], None] = None,
               *,
               preset: Optional[str] = None,
               work_dir: Optional[str] = None,
               trials: Optional[int] = None,
               metric: Optional[str] = None,
               direction: str = 'maximize',
               sampler: str = 'auto',
               pruner: str = 'none',
               pruner_options: Optional[Mapping[str, Any]] = None,
               storage: Optional[str] = None,
               study_name: Optional[str] = None,
               cfg_options: Optional[Mapping[str, Any]] = None,
               val_cfg_options: Optional[Mapping[str, Any]] = None,
               gpus: Optional[Sequence[Union[int, str]]] = None,
               seed: int = 0,
               keep_checkpoints: bool = False,
               heartbeat: Optional[int] = 60,
               train_seeds: Optional[Sequence[int]] = None) -> SearchResult:
    """Searches hyperparameters of ``config`` on its validation split (resumable).

    Every bad input (unknown key, bad range, unknown metric, no validation split, unknown
    preset or pruner) raises a one-line ``ValueError`` before any trial starts. Running it again
    on the same work directory (storage and study) resumes the search.

    Args:
        config (str): The config file.
        space (Sequence[str] | Mapping, optional): ``'key=values'`` items or a mapping of key
            to a list of values, a :class:`Range` or a values string; added to (and overriding)
            the preset's. Defaults to None.
        preset (str, optional): ``'vpt-prompt'``, ``'vpt-linear'`` or ``'davpt'``
            (:data:`PRESETS`). Defaults to None.
        work_dir (str, optional): The search's folder. Defaults to None
            (``work_dirs/tune/<config name>``).
        trials (int, optional): Finished trials to reach. Defaults to None (the grid's size
            for a grid, else 20).
        metric (str, optional): The validation metric. Defaults to None (the evaluator's
            first).
        direction (str): ``'maximize'`` or ``'minimize'``. Defaults to ``'maximize'``.
        sampler (str): ``'auto'`` (grid for lists only, else TPE), ``'grid'``, ``'tpe'`` or
            ``'random'``. Defaults to ``'auto'``.
        pruner (str): ``'none'``, ``'median'``, ``'halving'``, ``'hyperband'`` or
            ``'threshold'``. Defaults to ``'none'``.
        pruner_options (Mapping, optional): Keyword arguments of the Optuna pruner.
            Defaults to None.
        storage (str, optional): Storage URL (see :func:`make_storage`). Defaults to None
            (``sqlite:///<work_dir>/study.db``).
        study_name (str, optional): Defaults to None (the config's name).
        cfg_options (Mapping, optional): Config options of every trial, kept in ``best.py``.
            Defaults to None.
        val_cfg_options (Mapping, optional): Config options of every trial that carve the
            validation split, left out of ``best.py``. Defaults to None.
        gpus (Sequence, optional): One worker process per GPU id, each seeing only its GPU;
            None runs the trials one at a time in this process. Defaults to None.
        seed (int): Seed of the sampler, and of training when the config sets none.
            Defaults to 0.
        keep_checkpoints (bool): Keep the config's checkpoint hook in the trials.
            Defaults to False.
        heartbeat (int, optional): Heartbeat interval of an RDB storage in seconds.
            Defaults to 60.
        train_seeds (Sequence[int], optional): Train every trial once per seed (the
            config's ``randomness.seed``) and score it by the mean of their last validations;
            the pruner sees the first seed's run only. None trains once with the config's
            seed. Defaults to None.

    Returns:
        SearchResult: The table rows, the best trial and the files written.
    """
    spec = make_spec(
        config, space, preset=preset, work_dir=work_dir, trials=trials, metric=metric,
        direction=direction, sampler=sampler, pruner=pruner, pruner_options=pruner_options,
        storage=storage, study_name=study_name, cfg_options=cfg_options,
        val_cfg_options=val_cfg_options, seed=seed, keep_checkpoints=keep_checkpoints,
        heartbeat=heartbeat, train_seeds=train_seeds)
    work_dir = spec.work_dir
    search = Search(spec)  # every check, before anything is written
    search.set_logger(_logger(work_dir))
    search.log(f'search of {config}: {len(search.params)} keys '
               f'({", ".join(p.name for p in search.params)}), {search.sampler_name} sampler, '
               f'pruner {pruner}, {search.trials} trials, metric '
               f'{search.metric or "(the first the evaluator returns)"} ({direction}), '
               f'storage {spec.storage}')
    study = search.open_study()
    stored = study.user_attrs.get('search')
    signature = search.signature()
    if stored is None:
        study.set_user_attr('search', signature)
    elif stored != signature:
        changed = ', '.join(k for k in dict(stored, **signature)
                            if stored.get(k) != signature.get(k))
        raise ValueError(f'study {spec.study_name!r} in {spec.storage} is a search with another '
                         f'{changed}; resume it unchanged, or give another --work-dir or '
                         '--study-name')
    done = _count(study, (TrialState.COMPLETE, TrialState.PRUNED))
    if done:
        search.log(f'resuming: {done} trials already finished')
    recover_abandoned(study, search.log)
    study.set_user_attr(SAMPLER_START, len(study.get_trials(deepcopy=False)))
    if gpus:
        gpus = [str(g) for g in gpus]
        spec_file = osp.join(work_dir, 'search_spec.pkl')
        with open(spec_file, 'wb') as f:
            pickle.dump(_spec_to_plain(spec), f)
        search.log(f'{len(gpus)} workers, CUDA_VISIBLE_DEVICES {", ".join(gpus)}; their '
                   f'output: {osp.join(work_dir, "worker_<gpu>.log")}')
        codes = launch_workers(spec_file, gpus, work_dir)
        if any(codes):
            search.log(f'workers exited with {codes}', logging.ERROR)
    else:
        _optimize(search)
    return report(search, search.open_study())


def make_spec(config: str,
              space: Union[Sequence[str], Mapping[str, Any], None] = None,
              *,
              preset: Optional[str] = None,
              work_dir: Optional[str] = None,
              trials: Optional[int] = None,
              metric: Optional[str] = None,
              direction: str = 'maximize',
              sampler: str = 'auto',
              pruner: str = 'none',
              pruner_options: Optional[Mapping[str, Any]] = None,
              storage: Optional[str] = None,
              study_name: Optional[str] = None,
              cfg_options: Optional[Mapping[str, Any]] = None,
              val_cfg_options: Optional[Mapping[str, Any]] = None,
              seed: int = 0,
              keep_checkpoints: bool = False,
              heartbeat: Optional[int] = 60,
              train_seeds: Optional[Sequence[int]] = None) -> SearchSpec:
    """The :class:`SearchSpec` of :func:`run_search`'s arguments (same meaning and defaults).

    Raises:
        ValueError: On a bad direction, sampler, trial count, space item or a missing config.
    """
    name = osp.splitext(osp.basename(config))[0]
    work_dir = osp.abspath(work_dir or osp.join('work_dirs', 'tune', name))
    if direction not in ('maximize', 'minimize'):
        raise ValueError(f'direction must be maximize or minimize, got {direction!r}')
    if sampler not in SAMPLERS:
        raise ValueError(f'unknown sampler {sampler!r}; known: {", ".join(SAMPLERS)}')
    if trials is not None and trials < 1:
        raise ValueError(f'--trials must be >= 1, got {trials}')
    if train_seeds is not None:
        train_seeds = [int(s) for s in train_seeds]
        if not train_seeds or len(set(train_seeds)) != len(train_seeds):
            raise ValueError(f'--train-seeds must be distinct seeds, got {train_seeds}')
    spec = SearchSpec(
        config=osp.abspath(config), space=parse_space(space), preset=preset, work_dir=work_dir,
        trials=trials, metric=metric, direction=direction, sampler=sampler, pruner=pruner,
        pruner_options=dict(pruner_options or {}),
        storage=storage or f'sqlite:///{osp.join(work_dir, "study.db")}',
        study_name=study_name or name, cfg_options=dict(cfg_options or {}),
        val_cfg_options=dict(val_cfg_options or {}), seed=seed,
        keep_checkpoints=keep_checkpoints, heartbeat=heartbeat, train_seeds=train_seeds)
    if not osp.isfile(spec.config):
        raise ValueError(f'no config file {config}')
    return spec


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of tune.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Search hyperparameters of a config on its validation split (Optuna)',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='short names: ' + ', '.join(f'{k} ({v})' for k, v in SHORT_NAMES.items()))
    parser.add_argument('config', nargs='?', help='the config file')
    parser.add_argument('--space', nargs='+', default=[], metavar='KEY=VALUES',
                        help='searched keys: a short name or config path (KEY1+KEY2 ties '
                        'them), = a list a,b,c (grid) or a range low:high[:log|:step]')
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help="vpt-prompt / vpt-linear: VPT's lr x weight-decay grids with SGD "
                        "(momentum 0.9, lr x batch/256); davpt: the authors' AdamW lr, weight "
                        'decay and beta=lambda ranges')
    parser.add_argument('--work-dir', help='the search folder (default work_dirs/tune/<config>)')
    parser.add_argument('--trials', type=int,
                        help=f'trials to finish (default: the grid, or '
                        f'{DEFAULT_SAMPLED_TRIALS} when sampling)')
    parser.add_argument('--metric', help="validation metric (default: the evaluator's first)")
    parser.add_argument('--direction', choices=['maximize', 'minimize'], default='maximize')
    parser.add_argument('--sampler', choices=SAMPLERS, default='auto',
                        help='auto: grid when every key has a list, else TPE')
    parser.add_argument('--pruner', choices=PRUNERS, default='none',
                        help='stop bad trials on the metric of each validation')
    parser.add_argument('--pruner-options', nargs='+', action=DictAction, default={},
                        help='arguments of the Optuna pruner, e.g. n_startup_trials=4 '
                        '(median), min_resource=1 reduction_factor=3 (halving)')
    parser.add_argument('--storage', help='Optuna storage URL (default sqlite:///WORK_DIR/'
                        'study.db; journal:PATH for a journal file on shared storage)')
    parser.add_argument('--study-name', help='default: the config name')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config options of every trial, kept in best.py')
    parser.add_argument('--val-cfg-options', nargs='+', action=DictAction, default={},
                        help='config options that carve the validation split (every trial; '
                        'not in best.py), e.g. train_dataloader.dataset.split=train800')
    parser.add_argument('--gpus', help='comma-separated GPU ids: one worker per GPU')
    parser.add_argument('--seed', type=int, default=0, help='sampler seed (default 0)')
    parser.add_argument('--train-seeds', type=int, nargs='+', metavar='SEED',
                        help='train every trial once per seed and score it by the mean '
                        '(the pruner sees the first seed\'s run); default: once, with the '
                        'config\'s seed')
    parser.add_argument('--keep-checkpoints', action='store_true',
                        help="keep the config's checkpoints in the trials")
    parser.add_argument('--heartbeat', type=int, default=60,
                        help='heartbeat interval (s) of running trials in an RDB storage; 0 '
                        'turns heartbeats off')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--worker-index', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None and args.config is None:
        parser.error('the following arguments are required: config')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Runs a search from the command line; prints the table.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        int: The exit status (2 on bad input).
    """
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(args.worker, args.worker_index)
        return 0
    try:
        result = run_search(
            args.config, args.space, preset=args.preset, work_dir=args.work_dir,
            trials=args.trials, metric=args.metric, direction=args.direction,
            sampler=args.sampler, pruner=args.pruner, pruner_options=args.pruner_options,
            storage=args.storage, study_name=args.study_name, cfg_options=args.cfg_options,
            val_cfg_options=args.val_cfg_options,
            gpus=args.gpus.split(',') if args.gpus else None, seed=args.seed,
            keep_checkpoints=args.keep_checkpoints, heartbeat=args.heartbeat or None,
            train_seeds=args.train_seeds)
    except ValueError as e:
        print(f'tune.py: error: {e}', file=sys.stderr)
        return 2
    with open(result.files['table_md']) as f:
        print(f.read())
    return 0


if __name__ == '__main__':
    sys.exit(main())
