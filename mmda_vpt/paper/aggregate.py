"""The paper's tables of finished runs: finding them, reading their results, averaging seeds.

What it reads (the layout ``tools/train.py`` and ``tools/test.py`` leave behind):

* A *run* is a work directory holding the config that mmengine dumps there on every start,
  ``<config name>.py``, named as one of the generated configs (:mod:`mmda_vpt.paper`), e.g.
  ``work_dirs/<config name>/seed0/<config name>.py``.
  Several runs of one config (seeds) are averaged; put each seed in its own work directory
  (``--work-dir work_dirs/<config>/seed<k>`` for training and testing).
* Its result is the metrics file mmengine writes after a test, ``<timestamp>/<timestamp>.json``
  (one JSON object), from ``python tools/test.py CONFIG CHECKPOINT --work-dir <run>``:
  ``accuracy/top1`` for classification and ``mIoU`` for segmentation. A segmentation test whose
  dumped config (``<timestamp>/vis_data/config.py``) has ``model.type == 'SegTTAModel'`` counts
  as multi-scale (mIoU-MS), any other as single-scale. The newest file of each kind is used.
* With ``use_val``, a run without test results falls back to the last validation value in
  ``<timestamp>/vis_data/scalars.json`` (marked ``val`` in the tables). VTAB's val200 is part of
  train800val200, so those values are not test accuracies.

What :func:`format_tables` writes (Markdown): per task the mean and standard deviation over the
runs; per backbone and method (the DA-VPT methods' authors'-code rows, ``*_authors-code``
configs, as a method of their own, "DA-VPT (authors' code)", beside the paper rows) the FGVC mean,
the VTAB-1k Natural / Specialized / Structured means and their mean (VPT's "overall"); and
segmentation mIoU single- and multi-scale. Every row shows the paper's number (where it reports
one) and the difference. A group mean is printed only when every task of the group has a result.
"""
import json
import math
import os
import os.path as osp
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .names import ALIASES, cls_config_path, seg_config_path
from .reference import REFERENCE_FGVC, REFERENCE_GROUPS, REFERENCE_SEG
from .tables import (BACKBONES, CLS_METHODS, DAVPT_METHODS, FAMILIES, FGVC_TASKS, SEG_METHODS,
                     SEG_TASKS, TASKS, VTAB_GROUPS, VTAB_TASKS)

__all__ = [
    'AUTHORS_LABEL', 'ConfigInfo', 'Row', 'RunResult', 'collect', 'config_index', 'find_runs',
    'format_tables', 'mean_std', 'read_run', 'summarize'
]

CLS_METRIC = 'accuracy/top1'
SEG_METRIC = 'mIoU'
TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')


@dataclass(frozen=True)
class ConfigInfo:
    """What a generated config is: its kind, method, backbone and task keys and its family
    (``FAMILIES``: ``'paper'``, or ``'authors'`` for an authors'-code row)."""
    kind: str  # 'cls' or 'seg'
    method: str
    backbone: str
    task: str
    family: str = 'paper'


#: The tables' method label of an authors'-code row: the method's title and this.
AUTHORS_LABEL = " (authors' code)"


@dataclass
class RunResult:
    """The results of one run (one seed of one config).

    Attributes:
        path: The run's work directory.
        config: Name of its config (without ``.py``).
        info: What the config is.
        values: ``'test'`` (classification), ``'ss'`` and ``'ms'`` (segmentation) or ``'val'``
            (with ``--use-val``) -> metric value in %.
    """
    path: str
    config: str
    info: ConfigInfo
    values: Dict[str, float] = field(default_factory=dict)


def config_index() -> Dict[str, ConfigInfo]:
    """Config name (without ``.py``) -> what it is, for every generated config and alias."""
    index = {}
    for method in CLS_METHODS:
        families = FAMILIES if method in DAVPT_METHODS else ('paper', )
        for backbone in BACKBONES:
            for task in TASKS:
                for family in families:
                    path = cls_config_path(method, backbone, task, family)
                    index[osp.basename(path)[:-3]] = ConfigInfo('cls', method.key, backbone.key,
                                                                task.key, family)
    for method in SEG_METHODS:
        for task in SEG_TASKS:
            name = osp.basename(seg_config_path(method, task))[:-3]
            index[name] = ConfigInfo('seg', method.key, 'in21k', task.key)
    for alias, target in ALIASES.items():
        index[osp.basename(alias)[:-3]] = index[osp.basename(target)[:-3]]
    return index


def find_runs(roots: Sequence[str], index: Dict[str, ConfigInfo]) -> List[Tuple[str, str]]:
    """``(run directory, config name)`` for every directory under ``roots`` holding a known
    config dump."""
    runs = []
    for root in roots:
        if not osp.isdir(root):
            raise FileNotFoundError(f'{root} is not a directory')
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            names = sorted(f[:-3] for f in filenames if f.endswith('.py') and f[:-3] in index)
            if len(names) > 1:
                raise ValueError(f'{dirpath} holds the configs of several experiments '
                                 f'({", ".join(names)}); give each run its own work directory')
            if names:
                runs.append((dirpath, names[0]))
    return runs


def _is_tta(config_dump: str) -> bool:
    """Whether a dumped config tests with mmseg's TTA model."""
    from mmengine.config import Config
    cfg = Config.fromfile(config_dump, import_custom_modules=False)
    model = cfg.get('model', {})
    return isinstance(model, dict) and model.get('type') == 'SegTTAModel'


def _last_scalar(path: str, metric: str) -> Optional[float]:
    value = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            record = json.loads(line)
            for key in (metric, f'val/{metric}'):
                if key in record:
                    value = float(record[key])
    return value


def read_run(path: str, config: str, info: ConfigInfo, use_val: bool = False) -> RunResult:
    """The newest test results of one run (and, with ``use_val``, the last validation one)."""
    metric = SEG_METRIC if info.kind == 'seg' else CLS_METRIC
    result = RunResult(path, config, info)
    stamps = sorted(d for d in os.listdir(path)
                    if TIMESTAMP.match(d) and osp.isdir(osp.join(path, d)))
    for stamp in stamps:  # oldest first: newer results overwrite older ones
        metrics_file = osp.join(path, stamp, f'{stamp}.json')
        if osp.isfile(metrics_file):
            with open(metrics_file) as f:
                try:
                    metrics = json.load(f)
                except json.JSONDecodeError as err:
                    raise ValueError(f'{metrics_file} is not one JSON object (a test run '
                                     f'writes one): {err}') from None
            if isinstance(metrics, dict) and metric in metrics:
                kind = 'test'
                if info.kind == 'seg':
                    dump = osp.join(path, stamp, 'vis_data', 'config.py')
                    kind = 'ms' if osp.isfile(dump) and _is_tta(dump) else 'ss'
                result.values[kind] = float(metrics[metric])
        scalars = osp.join(path, stamp, 'vis_data', 'scalars.json')
        if use_val and osp.isfile(scalars):
            value = _last_scalar(scalars, metric)
            if value is not None:
                result.values['val'] = value
    return result


def collect(roots: Sequence[str], use_val: bool = False) -> List[RunResult]:
    """Every run under ``roots`` with its results."""
    index = config_index()
    return [read_run(path, name, index[name], use_val) for path, name in find_runs(roots, index)]


def mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (None for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean)**2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


@dataclass
class Row:
    """One printed row: ``what`` is the label columns."""
    what: Tuple[str, ...]
    n: str
    mean: Optional[float]
    std: Optional[float]
    paper: Optional[float]
    source: str = ''

    @property
    def diff(self) -> Optional[float]:
        if self.mean is None or self.paper is None:
            return None
        return self.mean - self.paper


def _pick(result: RunResult, kind: str, use_val: bool) -> Optional[Tuple[float, str]]:
    if kind in result.values:
        return result.values[kind], ''
    if use_val and kind in ('test', 'ss') and 'val' in result.values:
        return result.values['val'], 'val'
    return None


def summarize(results: Iterable[RunResult], use_val: bool = False) -> Dict[str, List[Row]]:
    """The tables: ``'tasks'``, ``'groups'`` and ``'segmentation'`` rows."""
    results = list(results)
    titles = {t.key: t for t in TASKS}
    methods = {m.key: m.title for m in CLS_METHODS + SEG_METHODS}
    backbones = {b.key: b.title for b in BACKBONES}
    # Classification by (backbone, (method, family), task).
    per_task: Dict[Tuple[str, Tuple[str, str], str], List[Tuple[float, str]]] = defaultdict(list)
    per_seg: Dict[Tuple[str, str, str], List[Tuple[float, str]]] = defaultdict(list)
    for result in results:
        info = result.info
        if info.kind == 'cls':
            value = _pick(result, 'test', use_val)
            if value is not None:
                per_task[(info.backbone, (info.method, info.family), info.task)].append(value)
        else:
            for scale in ('ss', 'ms'):
                value = _pick(result, scale, use_val)
                if value is not None:
                    per_seg[(info.method, info.task, scale)].append(value)

    order_b = [b.key for b in BACKBONES]
    # Each method's paper rows, then (DA-VPT methods) its authors'-code rows.
    order_m = [(m.key, f) for m in CLS_METHODS for f in FAMILIES]
    order_t = [t.key for t in TASKS]

    def label(method: Tuple[str, str]) -> str:
        key, family = method
        return methods[key] + (AUTHORS_LABEL if family == 'authors' else '')

    task_rows, group_rows = [], []
    task_means: Dict[Tuple[str, Tuple[str, str], str], float] = {}
    for (b, m, t) in sorted(per_task, key=lambda k: (order_b.index(k[0]), order_m.index(k[1]),
                                                      order_t.index(k[2]))):
        values = per_task[(b, m, t)]
        mean, std = mean_std([v for v, _ in values])
        task_means[(b, m, t)] = mean
        paper = REFERENCE_FGVC.get((b, m[0]), {}).get(t)
        source = 'val' if any(s == 'val' for _, s in values) else ''
        task_rows.append(Row((backbones[b], label(m), titles[t].title), str(len(values)), mean,
                             std, paper, source))

    groups = [('FGVC', [t.key for t in FGVC_TASKS])]
    groups += [(g, [t.key for t in VTAB_TASKS if t.group == g])
               for g in VTAB_GROUPS]
    for b in order_b:
        for m in order_m:
            if not any((b, m, t) in task_means for t in order_t):
                continue
            reference = REFERENCE_GROUPS.get((b, m[0]), {})
            vtab_means, vtab_refs = [], []
            for group, keys in groups:
                have = [task_means[(b, m, t)] for t in keys if (b, m, t) in task_means]
                mean = sum(have) / len(have) if len(have) == len(keys) else None
                paper = reference.get(group)
                group_rows.append(Row((backbones[b], label(m), group),
                                      f'{len(have)}/{len(keys)}', mean, None, paper))
                if group != 'FGVC':
                    vtab_means.append(mean)
                    vtab_refs.append(paper)
            overall = (None if any(v is None for v in vtab_means) else
                       sum(vtab_means) / len(vtab_means))
            overall_ref = (None if any(v is None for v in vtab_refs) else
                           sum(vtab_refs) / len(vtab_refs))
            done = sum(v is not None for v in vtab_means)
            group_rows.append(Row((backbones[b], label(m), 'VTAB-1k overall'),
                                  f'{done}/{len(vtab_means)}', overall, None, overall_ref))

    seg_rows = []
    seg_titles = {t.key: t.title for t in SEG_TASKS}
    order_s = [m.key for m in SEG_METHODS]
    order_d = [t.key for t in SEG_TASKS]
    for (m, t, scale) in sorted(per_seg, key=lambda k: (order_d.index(k[1]), order_s.index(k[0]),
                                                         k[2] == 'ms')):
        values = per_seg[(m, t, scale)]
        mean, std = mean_std([v for v, _ in values])
        ref = REFERENCE_SEG.get((t, m))
        paper = None if ref is None else ref[0 if scale == 'ss' else 1]
        source = 'val' if any(s == 'val' for _, s in values) else ''
        label = 'mIoU single-scale' if scale == 'ss' else 'mIoU multi-scale'
        seg_rows.append(Row((seg_titles[t], methods[m], label), str(len(values)), mean, std,
                            paper, source))
    return dict(tasks=task_rows, groups=group_rows, segmentation=seg_rows)


def _num(value: Optional[float], signed: bool = False) -> str:
    if value is None:
        return '-'
    return f'{value:+.2f}' if signed else f'{value:.2f}'


def format_tables(tables: Dict[str, List[Row]]) -> str:
    """The tables as Markdown."""
    headers = dict(
        tasks=('Per task (top-1 %)', ('backbone', 'method', 'task', 'runs')),
        groups=('FGVC and VTAB-1k means (mean of the task means)',
                ('backbone', 'method', 'benchmark', 'tasks')),
        segmentation=('Segmentation, SETR-PUP ViT-L/16 (mIoU %)',
                      ('dataset', 'method', 'metric', 'runs')),
    )
    out = []
    for key in ('tasks', 'groups', 'segmentation'):
        rows = tables.get(key, [])
        if not rows:
            continue
        title, columns = headers[key]
        out.append(f'## {title}\n')
        cols = list(columns) + ['mean', 'std', 'paper', 'diff']
        out.append('| ' + ' | '.join(cols) + ' |')
        out.append('|' + '---|' * len(cols))
        for row in rows:
            mean = _num(row.mean) + (' (val)' if row.source == 'val' else '')
            cells = list(row.what) + [row.n, mean, _num(row.std), _num(row.paper),
                                      _num(row.diff, signed=True)]
            out.append('| ' + ' | '.join(cells) + ' |')
        out.append('')
    return '\n'.join(out)
