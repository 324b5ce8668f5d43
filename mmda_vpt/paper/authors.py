"""The authors' per-task DA-VPT settings: reading their table and filling its gaps.

The table, ``authors_hyperparameters.csv`` beside this module (package data), has one row per
config file of the authors' release (github.com/Noahsark/DA-VPT ``configs/{fgvc,vtab}/*.yaml``;
meanings from their ``params.py``, ``train.py``, ``model_creator.py``, ``utils/utils.py`` and
``models/``):

- ``lr``: peak learning rate (AdamW, 10 warm-up epochs, cosine over 100 epochs).
- ``wd``: weight decay of the prompts, the CLS token and other trained weights of more than one
  dimension; ``wd_head``: of the head's weight. Biases and 1-D parameters get none.
- ``P``: prompts in the layers that are not guided; ``M``: prompts in the guided layers.
- ``guided``: the guided layers, 0-based, ``a-b`` both inclusive.
- ``beta``: weight of L_ML(x, p) (``vpt_loss_weight``); ``lam``: of L_ML(p, x_cls)
  (``cls_loss_weight``).
- ``scale``: ``loss_vpt_scale_ratio``, the proxies' scale (``PromptMetricLossHook.proxy_scale``).
- ``drop_path``: drop-path rate of the frozen backbone (``DAVPTViT.frozen_drop_path_rate``).
- ``kmeans_from``: ``dynamic_kmeans``, the 0-based epoch from whose end on the map is
  re-clustered every epoch (``ClassPromptMappingHook.first_update = kmeans_from + 1``, 1-based);
  0 never.
- ``sampler``: class-balanced batches (``ClassBalancedSampler``).
- ``batch``: batch size; ``spc``: images per class in a batch (``samples_per_class``).
- ``min_lr``: the cosine's floor; ``warmup_lr``: the warm-up's start.
- ``init_div8``: the prompts' xavier initialization divided by 8 (``prompt_init_scale``).
- ``L2_PROMPT_FILES`` / ``MASK_FILES`` (constants below, not table columns): the files with
  ``vpt_norm: "l2"`` (``DAVPTViT.prompt_norm='l2'``) and ``mask: true``
  (``DAVPTViT.prompt_attn_mask='patches_only'``); the paper is silent on both, so both families
  follow them; every other file and every task without a file has neither.
- ``bias_k``, ``norm_norm1``, ``train_cls``: the per-file part of the trained bias set: the K
  bias, LayerNorm 1's weight and bias, the CLS token (every file also trains the V,
  attention-output, fc2 and LayerNorm-2 biases and, through their ``proj.bias`` name match,
  the patch embedding's bias).

Gap rules (the README states them): a key a file does not set takes the ``params.py`` default
(``PARAMS_DEFAULTS``); a value under an older key name (``[x]``) is taken as written; a proxy
scale of 0 (which makes the metric terms constant) is taken as 1 in paper rows and as beta =
lambda = 0 in authors'-code rows (the same training); a task without a file takes, key by key,
the most common value of the same backbone's VTAB files (a tie goes to the ``params.py`` default
if it is among the tied values, else to the smallest). Both config families take the values the
files state, also where the authors' parser drops a key (``PARSER_DROPPED``).
"""
import collections
import csv
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..models.backbones.bias_tuning import authors_bias_parts
from .tables import BACKBONES, TASKS, Guidance

__all__ = [
    'AUTHORS_CSV', 'Calibration', 'L2_PROMPT_FILES', 'MASK_FILES',
    'PARAMS_DEFAULTS', 'PARSER_DROPPED', 'calibration_bias_parts', 'calibrations',
    'read_authors_table'
]

AUTHORS_CSV = osp.join(osp.dirname(osp.abspath(__file__)), 'authors_hyperparameters.csv')
_AUTHORS_KEYS = ('lr', 'wd', 'wd_head', 'P', 'M', 'guided', 'beta', 'lam', 'scale', 'drop_path',
                 'kmeans_from', 'sampler', 'batch', 'spc', 'min_lr', 'warmup_lr', 'init_div8',
                 'bias_k', 'norm_norm1', 'train_cls')
_AUTHORS_COLUMNS = ('config', 'backbone', 'task') + _AUTHORS_KEYS
_INT_KEYS = ('P', 'M', 'kmeans_from', 'batch', 'spc')
_BOOL_KEYS = ('sampler', 'init_div8', 'bias_k', 'norm_norm1', 'train_cls')
# The authors' params.py defaults of the keys a config file may leave out.
PARAMS_DEFAULTS: Dict[str, object] = dict(
    lr=1e-3, wd=0.01, wd_head=3.0, P=20, M=10, guided=(11, ), beta=0.0, lam=0.0, scale=1.0,
    drop_path=0.0, kmeans_from=0, batch=32, spc=2, min_lr=1e-8, warmup_lr=1e-7, init_div8=False,
    bias_k=False, norm_norm1=False, train_cls=False)
# Keys whose params.py default is the rule rather than a gap (only one file sets spc): not noted.
_QUIET_DEFAULTS = ('spc', )

# Switched on in every authors' file (the header of authors_hyperparameters.csv): bias_v,
# bias_proj (which their name match also applies to patch_embed.proj.bias), bias_fc2, bias_norm2.
_ALWAYS_ON = ('bias_v', 'bias_proj', 'bias_fc2', 'bias_norm2')

#: The authors' files with ``vpt_norm: "l2"``: their prompts are L2-normalized per token before
#: they enter every block (``DAVPTViT.prompt_norm='l2'``).
L2_PROMPT_FILES = ('fgvc_mae_cub200', 'fgvc_mae_dogs', 'fgvc_moco_cub200', 'fgvc_vitb_cub200')
#: The authors' files with ``mask: true``: in every block their prompts attend to the patches
#: only (``DAVPTViT.prompt_attn_mask='patches_only'``).
MASK_FILES = ('fgvc_mae_birds', 'fgvc_mae_cars', 'fgvc_mae_cub200', 'fgvc_mae_flowers',
              'fgvc_moco_flowers', 'fgvc_vitb_cub200')

#: The rows where the authors' released parser drops what the file states (params.py ignores
#: keys it does not define): file -> what their code runs instead. Both config families take the
#: file's values.
PARSER_DROPPED: Dict[str, str] = {
    'fgvc_vitb_dogs': 'beta = lambda = 0 (vpt_and_cls_loss_weight 0.01 dropped); M 10 '
                      '(num_last_prompts 5 dropped)',
    'fgvc_vitb_flowers': 'beta = lambda = 0 (vpt_and_cls_loss_weight 0.05 dropped); M 10 '
                         '(num_last_prompts 20 dropped)',
    'vtab_vitb_caltech101': 'beta = lambda = 0 (vpt_and_cls_loss_weight 0.01 dropped); M 10 '
                            '(num_last_prompts 20 dropped)',
    'vtab_vitb_dtd': 'beta = lambda = 0 (vpt_and_cls_loss_weight 0.02 dropped)',
    'vtab_vitb_pet': 'beta = lambda = 0 (vpt_and_cls_loss_weight 0.1 dropped)',
    'vtab_vitb_smallnorb_ele': 'beta (vpt_loss_weight) 0: the file sets none',
}


def calibration_bias_parts(bias_k: bool, norm_norm1: bool) -> Tuple[str, ...]:
    """The bias parts the authors' code trains for a table row's ``bias_k`` and ``norm_norm1``."""
    return authors_bias_parts(dict(dict.fromkeys(_ALWAYS_ON, True), bias_k=bias_k,
                                   norm_norm1=norm_norm1))


@dataclass(frozen=True)
class Calibration:
    """The authors' DA-VPT setting of one backbone and task, gap rules applied.

    Attributes:
        guidance: Guided layers, M, P, beta and lambda (``source``: ``'authors'`` for a task
            with a file, ``'filled'`` for one without).
        lr: Peak learning rate.
        weight_decay: Weight decay of the prompts and the CLS token.
        head_weight_decay: Weight decay of the head's weight.
        proxy_scale: ``PromptMetricLossHook.proxy_scale`` (a file's 0 taken as 1).
        zero_scale: Whether the file's proxy scale is 0 (its metric terms are constant).
        drop_path: ``DAVPTViT.frozen_drop_path_rate``.
        first_update: ``ClassPromptMappingHook.first_update``: 1-based epoch of the first
            re-clustering, ``dynamic_kmeans + 1`` (None: never re-clustered).
        class_balanced: Class-balanced sampling.
        batch_size: The file's batch size.
        samples_per_class: Images per class in a batch.
        min_lr: The file's cosine floor.
        warmup_lr: The file's warm-up start.
        prompt_init_scale: 1/8 where the file divides the xavier initialization by 8, else 1.
        bias_parts: The bias parts the authors' code trains.
        learnable_cls_token: Whether the authors' code trains the CLS token.
        prompt_norm: ``'l2'`` for the files of :data:`L2_PROMPT_FILES`, else None.
        prompt_attn_mask: ``'patches_only'`` for the files of :data:`MASK_FILES`, else None.
        config: The authors' config file; ``''`` for a task without one.
        notes: The gap rules this setting needed, in words.
    """
    guidance: Guidance
    lr: float
    weight_decay: float
    head_weight_decay: float
    proxy_scale: float
    zero_scale: bool
    drop_path: float
    first_update: Optional[int]
    class_balanced: bool
    batch_size: int
    samples_per_class: int
    min_lr: float
    warmup_lr: float
    prompt_init_scale: float
    bias_parts: Tuple[str, ...]
    learnable_cls_token: bool
    prompt_norm: Optional[str] = None
    prompt_attn_mask: Optional[str] = None
    config: str = ''
    notes: Tuple[str, ...] = ()


def read_authors_table(path: str = AUTHORS_CSV) -> List[Dict[str, str]]:
    """The rows of the authors' table, cells as written (``#`` lines are comments).

    Raises:
        ValueError: If the columns are not the expected ones, a row names an unknown backbone or
            task, or two rows name the same backbone and task.
    """
    with open(path, encoding='utf-8', newline='') as f:
        lines = [line for line in f if not line.startswith('#')]
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != _AUTHORS_COLUMNS:
        raise ValueError(f'{path}: the columns must be {", ".join(_AUTHORS_COLUMNS)}; '
                         f'got {reader.fieldnames}')
    backbones = {b.key for b in BACKBONES}
    tasks = {t.key for t in TASKS}
    rows, seen = [], set()
    for row in reader:
        name = row['config']
        if row['backbone'] not in backbones or row['task'] not in tasks:
            raise ValueError(f'{path}: row {name!r} names an unknown backbone or task '
                             f'({row["backbone"]!r}, {row["task"]!r})')
        key = (row['backbone'], row['task'])
        if key in seen:
            raise ValueError(f'{path}: two rows for backbone {key[0]!r} and task {key[1]!r}')
        seen.add(key)
        rows.append(row)
    return rows


def _parse_cell(name: str, key: str, text: str) -> Tuple[object, bool]:
    """A cell's value (None if empty) and whether it was bracketed (an older key name)."""
    bracketed = text.startswith('[') and text.endswith(']')
    raw = text[1:-1].strip() if bracketed else text.strip()
    if not raw:
        if bracketed:
            raise ValueError(f'{name}: {key} is an empty bracket')
        return None, False
    try:
        if key == 'guided':
            first, _, last = raw.partition('-')
            first, last = int(first), int(last or first)
            if last < first:
                raise ValueError(f'{raw!r} runs backwards')
            return tuple(range(first, last + 1)), bracketed
        if key in _INT_KEYS:
            return int(raw), bracketed
        if key in _BOOL_KEYS:
            return {'true': True, 'false': False}[raw.lower()], bracketed
        return float(raw), bracketed
    except (KeyError, ValueError) as err:
        raise ValueError(f'{name}: cannot read {key} {text!r} ({err})') from None


def _cell_text(value) -> str:
    if isinstance(value, tuple):
        return f'{value[0]}-{value[-1]}' if len(value) > 1 else str(value[0])
    if isinstance(value, bool):
        return str(value).lower()
    return f'{value:g}' if isinstance(value, float) else str(value)


def _resolve_row(row: Dict[str, str]) -> Tuple[Dict[str, object], List[str]]:
    """A row's values with the rules for unset keys and older key names."""
    name = row['config']
    values, unset, older = {}, [], []
    for key in _AUTHORS_KEYS:
        value, bracketed = _parse_cell(name, key, row[key])
        if value is None:
            if key not in PARAMS_DEFAULTS:
                raise ValueError(f'{name}: {key} is empty and params.py has no recorded default')
            value = PARAMS_DEFAULTS[key]
            if key not in _QUIET_DEFAULTS:
                unset.append(key)
        elif bracketed:
            older.append(key)
        values[key] = value
    if values['batch'] % values['spc']:
        raise ValueError(f'{name}: batch {values["batch"]} is not a multiple of spc '
                         f'{values["spc"]}')
    notes = []
    if older:
        notes.append("set under key names that the authors' script does not read, taken as the "
                     'file meant: ' + ', '.join(f'{k} {_cell_text(values[k])}' for k in older))
    if unset:
        notes.append('not set in the file, params.py defaults: ' +
                     ', '.join(f'{k} {_cell_text(values[k])}' for k in unset))
    return values, notes


def _most_common(values: Sequence, default=None) -> Tuple[object, Optional[list]]:
    """The most common value; on a tie the default if tied, else the smallest tied value.

    Returns:
        tuple: The value and the tied values (None without a tie).
    """
    counts = collections.Counter(values)
    top = max(counts.values())
    tied = sorted(v for v, c in counts.items() if c == top)
    if len(tied) == 1:
        return tied[0], None
    return (default if default in tied else tied[0]), tied


def _calibration(values: Dict[str, object], source: str, config: str,
                 notes: Sequence[str]) -> Calibration:
    notes = list(notes)
    zero_scale = values['scale'] == 0
    if zero_scale:
        notes.append('proxy scale 0 (which makes the metric terms constant) taken as 1 in paper '
                     "rows, as beta = lambda = 0 in authors'-code rows")
    return Calibration(
        guidance=Guidance(values['guided'], values['M'], values['P'], values['beta'],
                          values['lam'], source),
        lr=values['lr'],
        weight_decay=values['wd'],
        head_weight_decay=values['wd_head'],
        proxy_scale=1.0 if zero_scale else values['scale'],
        zero_scale=zero_scale,
        drop_path=values['drop_path'],
        first_update=values['kmeans_from'] + 1 if values['kmeans_from'] else None,
        class_balanced=values['sampler'],
        batch_size=values['batch'],
        samples_per_class=values['spc'],
        min_lr=values['min_lr'],
        warmup_lr=values['warmup_lr'],
        prompt_init_scale=0.125 if values['init_div8'] else 1.0,
        bias_parts=calibration_bias_parts(values['bias_k'], values['norm_norm1']),
        learnable_cls_token=values['train_cls'],
        prompt_norm='l2' if config in L2_PROMPT_FILES else None,
        prompt_attn_mask='patches_only' if config in MASK_FILES else None,
        config=config,
        notes=tuple(notes))


_CALIBRATIONS: Dict[str, Dict[Tuple[str, str], Calibration]] = {}


def calibrations(path: str = AUTHORS_CSV) -> Dict[Tuple[str, str], Calibration]:
    """Every (backbone key, task key) -> its DA-VPT setting: a row of the table, or filled in.

    A task without a file takes, key by key, the most common value of the same backbone's VTAB
    files (after the other rules). Read once per path; do not modify the result.
    """
    if path in _CALIBRATIONS:
        return _CALIBRATIONS[path]
    resolved = {}
    for row in read_authors_table(path):
        values, notes = _resolve_row(row)
        resolved[(row['backbone'], row['task'])] = (row['config'], values, notes)
    result = {}
    for backbone in BACKBONES:
        vtab = [values for (b, t), (_, values, _) in resolved.items()
                if b == backbone.key and t.startswith('vtab-')]
        for task in TASKS:
            if (backbone.key, task.key) in resolved:
                config, values, notes = resolved[(backbone.key, task.key)]
                result[(backbone.key, task.key)] = _calibration(values, 'authors', config, notes)
                continue
            if not vtab:
                raise ValueError(f'{path}: no VTAB row of backbone {backbone.key!r} to fill '
                                 f'{task.key!r} from')
            values, ties = {}, []
            for key in _AUTHORS_KEYS:
                values[key], tied = _most_common([v[key] for v in vtab],
                                                 PARAMS_DEFAULTS.get(key))
                if tied:
                    ties.append(f'{key} {_cell_text(values[key])} of '
                                f'{" / ".join(_cell_text(v) for v in tied)}')
            notes = [f"no authors' file: key by key the most common value of the {len(vtab)} "
                     f'{backbone.title} VTAB files']
            if ties:
                notes.append('ties (to the params.py default if tied, else the smallest): ' +
                             ', '.join(ties))
            result[(backbone.key, task.key)] = _calibration(values, 'filled', '', notes)
    _CALIBRATIONS[path] = result
    return result

