"""What defines a search (:class:`SearchSpec`, checked by :func:`make_spec`) and what it leaves."""
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .space import Range, parse_space

__all__ = ['DEFAULT_SAMPLED_TRIALS', 'PRUNERS', 'SAMPLERS', 'SearchResult', 'SearchSpec',
           'make_spec', 'spec_from_plain', 'spec_to_plain']

PRUNERS = ('none', 'median', 'halving', 'hyperband', 'threshold')
SAMPLERS = ('auto', 'grid', 'tpe', 'random')
DEFAULT_SAMPLED_TRIALS = 20


@dataclass
class SearchSpec:
    """Everything that defines a search; pickled into the work directory for the workers.

    The fields are :func:`~mmda_vpt.tune.run_search`'s arguments, with ``space`` parsed
    (:func:`~mmda_vpt.tune.parse_space`) and the paths absolute.
    """
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
    """The checked :class:`SearchSpec` of a search (what :func:`~mmda_vpt.tune.run_search`
    runs; its keyword arguments are these).

    Args:
        config (str): The config file.
        space (Sequence[str] | Mapping, optional): ``'key=values'`` items or a mapping of key
            to a list of values, a :class:`~mmda_vpt.tune.Range` or a values string (see
            :func:`~mmda_vpt.tune.parse_space`); added to (and overriding) the preset's.
            Defaults to None.
        preset (str, optional): ``'vpt-prompt'``, ``'vpt-linear'`` or ``'davpt'``
            (:data:`~mmda_vpt.tune.PRESETS`). Defaults to None.
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
        storage (str, optional): Storage URL (see :func:`~mmda_vpt.tune.make_storage`).
            Defaults to None (``sqlite:///<work_dir>/study.db``).
        study_name (str, optional): Defaults to None (the config's name).
        cfg_options (Mapping, optional): Config options of every trial, kept in ``best.py``.
            Defaults to None.
        val_cfg_options (Mapping, optional): Config options of every trial that carve the
            validation split, left out of ``best.py``. Defaults to None.
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
        SearchSpec: The spec, its space parsed and its paths absolute.

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


def spec_to_plain(spec: SearchSpec) -> dict:
    """The spec as built-in types only, for the workers' pickle (no class to import there).

    Args:
        spec (SearchSpec): The spec.

    Returns:
        dict: Its fields, each :class:`Range` as ``dict(range=(low, high, log, step))``.
    """
    plain = dict(vars(spec))
    plain['space'] = {k: (v if isinstance(v, list) else
                          dict(range=(v.low, v.high, v.log, v.step)))
                      for k, v in spec.space.items()}
    return plain


def spec_from_plain(plain: dict) -> SearchSpec:
    """The :class:`SearchSpec` of :func:`spec_to_plain`'s dict.

    Args:
        plain (dict): The dict.

    Returns:
        SearchSpec: The spec.
    """
    plain = dict(plain)
    plain['space'] = {k: (v if isinstance(v, list) else Range(*v['range']))
                      for k, v in plain['space'].items()}
    return SearchSpec(**plain)
