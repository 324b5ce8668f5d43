"""Generate the paper's configs under ``configs/da_vpt`` and ``configs/baselines`` from one table.

Every file in those two folders is written by this script, and so are the segmentation tasks'
heads, ``configs/_base_/models/setr-pup_vit-l16_{task}.py``; the tables below (tasks,
backbones, methods, the paper's numbers) and ``tools/authors_hyperparameters.csv`` (the
authors' per-task DA-VPT settings) are the single source. After editing a table, regenerate and
commit the files; ``tests/test_configs/test_configs.py`` fails while the committed files differ
from what this script writes.

Two families of DA-VPT / DA-VPT+ classification configs:

- **paper rows** (``{method}_{backbone}_1xb32-100e_{task}-224.py``) follow the paper where it
  speaks (K and V biases for DA-VPT+, VTAB resized directly to 224x224, batch 32, cosine to
  1e-8, the paper's loss inputs) and the authors' code where it is silent (pre-trained weights,
  prompt initialization, the class-to-prompt map's normalization, timing, unseen classes and
  initial clustering, class-slot batches, the cosine's shape, gradient clipping by value 10,
  fp16, weight decay of the CLS token, head initialization, MAE pooling, PIL bicubic resizing);
- **authors'-code rows** (the same name with ``_authors-code``, and the authors' batch size)
  follow the authors' code everywhere: their loss inputs (raw prompts, per-image mean of the
  block-input patches, positive term over every prompt), their per-file bias set and CLS token,
  VTAB short-side resize and centre crop, batch and images per class as the file states, their
  minimum lr. A DA-VPT (no plus) sibling is their code with every bias flag off.

Both families take the values the authors' YAML files state, also where the authors' parser drops
a key (``params.py`` ignores keys it does not define): see ``PARSER_DROPPED`` and the README.

The authors' table (``authors_hyperparameters.csv``, one row per config file of their release,
github.com/Noahsark/DA-VPT ``configs/{fgvc,vtab}/*.yaml``; meanings from their ``params.py``,
``train.py``, ``model_creator.py``, ``utils/utils.py`` and ``models/``):

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

Every DA-VPT / DA-VPT+ classification config carries its row, with one rule for every gap (the
README states them): a key a file does not set takes the ``params.py`` default
(``PARAMS_DEFAULTS``); a value under an older key name (``[x]``) is taken as written; a proxy
scale of 0 (which makes the metric terms constant) is taken as 1 in paper rows and as beta =
lambda = 0 in authors'-code rows (the same training); a task without a file takes, key by key,
the most common value of the same backbone's VTAB files (a tie goes to the ``params.py`` default
if it is among the tied values, else to the smallest).

Examples::

    python tools/gen_configs.py            # (re)write the configs
    python tools/gen_configs.py --check    # exit 1 and list the files that are not current
"""
import argparse
import collections
import csv
import os
import os.path as osp
import sys
import textwrap
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    'ALIASES', 'AUTHORS_CSV', 'AUTHORS_SUFFIX', 'BACKBONES', 'BIAS_PARTS', 'CLS_METHODS',
    'Calibration', 'DAVPT_METHODS', 'FAMILIES', 'FGVC_TASKS', 'GENERATED_DIRS', 'Guidance',
    'L2_PROMPT_FILES', 'MASK_FILES', 'Method', 'PARAMS_DEFAULTS', 'PARSER_DROPPED',
    'PretrainedBackbone', 'REFERENCE_FGVC',
    'REFERENCE_GROUPS', 'REFERENCE_SEG', 'SEG_METHODS', 'SEG_TASKS', 'SegTask', 'TASKS', 'Task',
    'VTAB_GROUPS', 'VTAB_TASKS', 'authors_bias_parts', 'calibrations', 'check',
    'cls_config_path', 'main', 'read_authors_table', 'render_all', 'seg_config_path', 'write_all'
]

HEADER = ('# Generated by tools/gen_configs.py from its tables; edit the tables and rerun\n'
          '# `python tools/gen_configs.py` instead of editing this file.\n')

GENERATED_DIRS = ('configs/da_vpt', 'configs/baselines')
#: The two families of DA-VPT classification configs.
FAMILIES = ('paper', 'authors')
#: Suffix of the authors'-code rows' file names.
AUTHORS_SUFFIX = '_authors-code'


# ----------------------------------------------------------------------------- the tables
@dataclass(frozen=True)
class Guidance:
    """DA-VPT's prompt and metric-loss settings for one segmentation task.

    Attributes:
        guided_layers: 0-based layers with metric guidance.
        num_guided_prompts: Prompts in the guided layers (the paper's M).
        num_prompts: Prompts in every other layer (and in every layer for VPT-Deep).
        beta: Weight of L_ML(x, p).
        lam: Weight of L_ML(p, x_cls).
        source: ``'authors'`` (their released config), ``'filled'`` (a task without one: see
            :func:`calibrations`) or ``'default'``.
    """
    guided_layers: Tuple[int, ...] = (10, 11)
    num_guided_prompts: int = 10
    num_prompts: int = 10
    beta: float = 0.05
    lam: float = 0.05
    source: str = 'default'


@dataclass(frozen=True)
class Task:
    """One classification task.

    Attributes:
        key: Token in the file names (``cub``, ``vtab-cifar100``).
        title: Name in the tables.
        benchmark: ``'fgvc'`` or ``'vtab'``.
        group: ``'FGVC'`` or the VTAB group (``'Natural'``, ``'Specialized'``, ``'Structured'``).
        data_root: Relative data root.
        num_classes: Number of classes.
        image_dir: FGVC image folder relative to the data root (VPT's layout).
        vpt_deep_prompts: VPT-Deep's prompts per layer (its own recipe: the authors' P where
            reference-numbers.md gives it, else 10). DA-VPT's settings are in the authors' table.
    """
    key: str
    title: str
    benchmark: str
    group: str
    data_root: str
    num_classes: int
    image_dir: str = ''
    vpt_deep_prompts: int = 10


FGVC_TASKS: List[Task] = [
    Task('cub', 'CUB-200-2011', 'fgvc', 'FGVC', 'data/cub', 200, 'images'),
    Task('nabirds', 'NABirds', 'fgvc', 'FGVC', 'data/nabirds', 555, 'images', 5),
    Task('flowers', 'Oxford Flowers', 'fgvc', 'FGVC', 'data/flowers', 102, ''),
    Task('dogs', 'Stanford Dogs', 'fgvc', 'FGVC', 'data/dogs', 120, 'Images'),
    Task('cars', 'Stanford Cars', 'fgvc', 'FGVC', 'data/cars', 196, '', 80),
]

# (key, title, group, folder of the common VTAB-1k archive, number of classes)
_VTAB = [
    ('cifar100', 'CIFAR-100', 'Natural', 'cifar', 100),
    ('caltech101', 'Caltech101', 'Natural', 'caltech101', 102),
    ('dtd', 'DTD', 'Natural', 'dtd', 47),
    ('flowers102', 'Flowers102', 'Natural', 'oxford_flowers102', 102),
    ('pets', 'Pets', 'Natural', 'oxford_iiit_pet', 37),
    ('svhn', 'SVHN', 'Natural', 'svhn', 10),
    ('sun397', 'Sun397', 'Natural', 'sun397', 397),
    ('camelyon', 'Patch Camelyon', 'Specialized', 'patch_camelyon', 2),
    ('eurosat', 'EuroSAT', 'Specialized', 'eurosat', 10),
    ('resisc45', 'Resisc45', 'Specialized', 'resisc45', 45),
    ('retinopathy', 'Retinopathy', 'Specialized', 'diabetic_retinopathy', 5),
    ('clevr-count', 'Clevr/count', 'Structured', 'clevr_count', 8),
    ('clevr-dist', 'Clevr/distance', 'Structured', 'clevr_dist', 6),
    ('dmlab', 'DMLab', 'Structured', 'dmlab', 6),
    ('kitti', 'KITTI/distance', 'Structured', 'kitti', 4),
    ('dsprites-loc', 'dSprites/location', 'Structured', 'dsprites_loc', 16),
    ('dsprites-ori', 'dSprites/orientation', 'Structured', 'dsprites_ori', 16),
    ('smallnorb-azi', 'SmallNORB/azimuth', 'Structured', 'smallnorb_azi', 18),
    ('smallnorb-ele', 'SmallNORB/elevation', 'Structured', 'smallnorb_ele', 9),
]
_VPT_DEEP_PROMPTS = {'cifar100': 20}
VTAB_TASKS: List[Task] = [
    Task(f'vtab-{key}', title, 'vtab', group, f'data/vtab-1k/{folder}', classes, '',
         _VPT_DEEP_PROMPTS.get(key, 10))
    for key, title, group, folder, classes in _VTAB
]
TASKS: List[Task] = FGVC_TASKS + VTAB_TASKS
VTAB_GROUPS = ('Natural', 'Specialized', 'Structured')


@dataclass(frozen=True)
class PretrainedBackbone:
    """A pre-trained ViT and where its converted (mmpretrain- or mmseg-format) checkpoint goes.

    Attributes:
        key: Key of the tables.
        token: Token in the file names.
        title: Name in the tables.
        checkpoint: Relative path of the converted checkpoint (the README names the file each
            one is converted from).
        davpt_out_type: What the head reads in the DA-VPT configs: ``'cls_token'``, or
            ``'avg_prompts_patches'`` (the mean of the final-norm prompt and patch tokens, the
            authors' global pooling of MAE).
    """
    key: str
    token: str
    title: str
    checkpoint: str
    davpt_out_type: str = 'cls_token'


# The authors' weights (their Dataset/names.py): timm's vit_base_patch16_224.augreg_in21k and
# vit_base_patch16_224.mae, MoCo v3's vit-b-300ep; SETR's jx_vit_large_p16_384 for ViT-L.
BACKBONES: List[PretrainedBackbone] = [
    PretrainedBackbone('in21k', 'vit-b16-in21k', 'supervised IN-21k',
                       'checkpoints/vit-b16_in21k-augreg.pth'),
    PretrainedBackbone('mae', 'vit-b16-mae', 'MAE', 'checkpoints/vit-b16_mae.pth',
                       'avg_prompts_patches'),
    PretrainedBackbone('mocov3', 'vit-b16-mocov3', 'MoCo v3', 'checkpoints/vit-b16_mocov3.pth'),
]
SEG_BACKBONE = PretrainedBackbone('in21k', 'setr-pup-vit-l16-in21k', 'ViT-L/16 IN-21k + SETR-PUP',
                                  'checkpoints/vit-l16_jx384_mmseg.pth')


@dataclass(frozen=True)
class Method:
    """A method of the tables.

    Attributes:
        key: Token in the file names.
        title: Name in the tables.
        folder: ``'da_vpt'`` or ``'baselines'``.
        prompts: Whether the backbone carries prompts.
        hooks: Whether the metric-loss and mapping hooks run.
        bias_tune: DA-VPT+ bias tuning.
        full: Whether every weight trains (stock ViT).
        lr: Default learning rate (classification).
        weight_decay: Default weight decay (classification).
    """
    key: str
    title: str
    folder: str
    prompts: bool
    hooks: bool
    bias_tune: Optional[str]
    full: bool
    lr: float
    weight_decay: float


_DAVPT = Method('davpt', 'DA-VPT', 'da_vpt', True, True, None, False, 1e-3, 1e-4)
_DAVPT_PLUS = Method('davpt-plus', 'DA-VPT+', 'da_vpt', True, True, 'kv', False, 1e-3, 1e-4)
_VPT_DEEP = Method('vpt-deep', 'VPT-Deep', 'baselines', True, False, None, False, 1e-3, 1e-4)
_LINEAR = Method('linear', 'Linear probe', 'baselines', False, False, None, False, 1e-3, 1e-4)
_FULL_FT = Method('full-ft', 'Full fine-tuning', 'baselines', False, False, None, True, 5e-5,
                  0.05)
CLS_METHODS: List[Method] = [_DAVPT, _DAVPT_PLUS, _VPT_DEEP, _LINEAR, _FULL_FT]
#: The methods with both config families.
DAVPT_METHODS: List[Method] = [_DAVPT, _DAVPT_PLUS]
SEG_METHODS: List[Method] = [_DAVPT, _DAVPT_PLUS, _VPT_DEEP, _FULL_FT]


@dataclass(frozen=True)
class SegTask:
    """A segmentation benchmark (SETR-PUP, ViT-L/16).

    Attributes:
        key: Token in the file names.
        title: Name in the tables.
        short: Token of the short config names (``setr_pup_vitl_{short}.py``).
        num_classes: Number of classes.
        crop: Crop size.
        stride: Slide-inference stride.
        iters: Training iterations.
        dataset_base: Base config of the dataset.
        schedule_base: Base config of the schedule.
        mapping_interval: Iterations between class-to-prompt updates: one pass over the training
            set at the total batch of 16.
        guidance: DA-VPT settings.
    """
    key: str
    title: str
    short: str
    num_classes: int
    crop: int
    stride: int
    iters: int
    dataset_base: str
    schedule_base: str
    mapping_interval: int
    guidance: Guidance = Guidance((22, 23), 10, 10, 0.05, 0.05, 'default')


SEG_TASKS: List[SegTask] = [
    SegTask('ade20k', 'ADE20K', 'ade20k', 150, 512, 341, 160000,
            'mmseg::_base_/datasets/ade20k.py', '../_base_/schedules/setr_sgd_160k.py',
            1264),  # 20210 training images / 16
    SegTask('pascal-context-60', 'PASCAL Context', 'pascal_context', 60, 480, 320, 80000,
            '../_base_/datasets/pascal_context_60_480x480.py',
            '../_base_/schedules/setr_sgd_80k.py', 313),  # 4996 training images / 16
]

# ----------------------------------------------------------------------------- the authors' table
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

#: mmda_vpt's bias parts (``DAVPTViT(bias_tune=(...))``), in their order.
BIAS_PARTS = ('q_bias', 'k_bias', 'v_bias', 'attn_out_bias', 'fc1_bias', 'fc2_bias',
              'norm1_weight', 'norm1_bias', 'norm2_weight', 'norm2_bias', 'patch_embed_bias',
              'final_norm_weight', 'final_norm_bias')
# Trained in every authors' file: bias_v, bias_proj (which their name match also applies to
# patch_embed.proj.bias), bias_fc2, bias_norm2.
_ALWAYS_TUNED = ('v_bias', 'attn_out_bias', 'fc2_bias', 'norm2_bias', 'patch_embed_bias')

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


def authors_bias_parts(bias_k: bool, norm_norm1: bool) -> Tuple[str, ...]:
    """The bias parts the authors' code trains for a file's ``bias_k`` and ``norm_norm1``."""
    parts = set(_ALWAYS_TUNED)
    if bias_k:
        parts.add('k_bias')
    if norm_norm1:
        parts.update(('norm1_weight', 'norm1_bias'))
    return tuple(p for p in BIAS_PARTS if p in parts)


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
        bias_parts=authors_bias_parts(values['bias_k'], values['norm_norm1']),
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


# The paper's numbers (top-1 % or mIoU %, mean of 3 seeds); see docs and reference-numbers.md.
REFERENCE_FGVC: Dict[Tuple[str, str], Dict[str, float]] = {
    ('in21k', 'vpt-deep'): dict(cub=88.5, nabirds=84.2, flowers=99.0, dogs=90.2, cars=83.6),
    ('in21k', 'davpt'): dict(cub=90.2, nabirds=87.4, flowers=99.4, dogs=89.4, cars=89.7),
    ('in21k', 'davpt-plus'): dict(cub=90.8, nabirds=88.3, flowers=99.8, dogs=89.8, cars=91.0),
}
# (backbone, method) -> FGVC mean and VTAB group means.
REFERENCE_GROUPS: Dict[Tuple[str, str], Dict[str, float]] = {
    ('in21k', 'vpt-deep'): dict(FGVC=89.11, Natural=78.48, Specialized=82.43, Structured=54.98),
    ('in21k', 'davpt'): dict(FGVC=91.22, Natural=80.25, Specialized=85.12, Structured=58.71),
    ('in21k', 'davpt-plus'): dict(FGVC=91.94, Natural=81.98, Specialized=86.47,
                                  Structured=59.96),
    ('mae', 'vpt-deep'): dict(FGVC=72.02, Natural=36.02, Specialized=60.61, Structured=26.57),
    ('mae', 'davpt-plus'): dict(FGVC=83.20, Natural=66.59, Specialized=82.96, Structured=59.28),
    ('mocov3', 'vpt-deep'): dict(FGVC=83.12, Natural=70.27, Specialized=83.04, Structured=42.38),
    ('mocov3', 'davpt-plus'): dict(FGVC=86.16, Natural=76.86, Specialized=84.71,
                                   Structured=58.98),
}
# (dataset key, method) -> (mIoU single-scale, mIoU multi-scale).
REFERENCE_SEG: Dict[Tuple[str, str], Tuple[float, float]] = {
    ('ade20k', 'full-ft'): (47.60, 49.18),
    ('ade20k', 'vpt-deep'): (44.08, 46.01),
    ('ade20k', 'davpt'): (45.10, 47.07),
    ('ade20k', 'davpt-plus'): (46.47, 47.21),
    ('pascal-context-60', 'full-ft'): (53.69, 55.21),
    ('pascal-context-60', 'vpt-deep'): (49.51, 50.46),
    ('pascal-context-60', 'davpt'): (50.15, 51.04),
    ('pascal-context-60', 'davpt-plus'): (50.40, 51.28),
}


# ----------------------------------------------------------------------------- names
def cls_config_path(method: Method, backbone: PretrainedBackbone, task: Task,
                    family: str = 'paper') -> str:
    """``configs/{folder}/{fgvc|vtab}/{method}_{backbone}_1xb{B}-100e_{task}-224[suffix].py``.

    Paper rows and baselines train with batch 32; an authors'-code row (``family='authors'``,
    file name suffix ``_authors-code``) with its file's batch.
    """
    if family not in FAMILIES:
        raise ValueError(f'family must be one of {FAMILIES}, got {family!r}')
    batch, suffix = 32, ''
    if family == 'authors':
        if not method.hooks:
            raise ValueError(f"{method.key} has no authors'-code rows")
        batch = calibrations()[(backbone.key, task.key)].batch_size
        suffix = AUTHORS_SUFFIX
    name = f'{method.key}_{backbone.token}_1xb{batch}-100e_{task.key}-224{suffix}.py'
    return osp.join('configs', method.folder, task.benchmark, name)


def seg_config_path(method: Method, task: SegTask) -> str:
    """``configs/{folder}/{method}_setr-pup-vit-l16-in21k_8xb2-{N}k_{task}-{S}x{S}.py``."""
    name = (f'{method.key}_{SEG_BACKBONE.token}_8xb2-{task.iters // 1000}k_{task.key}-'
            f'{task.crop}x{task.crop}.py')
    return osp.join('configs', method.folder, name)


def seg_heads_base_path(task: SegTask) -> str:
    """``configs/_base_/models/setr-pup_vit-l16_{task}.py``: the task's SETR-PUP heads."""
    return osp.join('configs', '_base_', 'models', f'setr-pup_vit-l16_{task.key}.py')


def _alias_path(method: Method, task: SegTask) -> str:
    suffix = {'davpt': '', 'davpt-plus': '_plus', 'vpt-deep': '_vpt_deep',
              'full-ft': '_full_ft'}[method.key]
    return osp.join('configs', method.folder, f'setr_pup_vitl_{task.short}{suffix}.py')


# Short names (the ones the issues give) -> the long names they inherit.
ALIASES: Dict[str, str] = {
    _alias_path(m, t): seg_config_path(m, t)
    for t in SEG_TASKS for m in SEG_METHODS
}


# ----------------------------------------------------------------------------- rendering
def _comment(text: str) -> str:
    """``text`` as ``#`` comment lines of at most 100 characters."""
    return textwrap.fill(text, width=100, initial_indent='# ', subsequent_indent='# ',
                         break_on_hyphens=False) + '\n'


def _fmt(value) -> str:
    if isinstance(value, tuple):
        if len(value) == 1:
            return f'({_fmt(value[0])}, )'
        return '(' + ', '.join(_fmt(v) for v in value) + ')'
    return repr(value)


def _arg(indent: str, name: str, value) -> str:
    """``name=value,`` at ``indent``; a long tuple wraps under its opening parenthesis."""
    line = f'{indent}{name}={_fmt(value)},'
    if len(line) <= 100 or not isinstance(value, tuple):
        return line + '\n'
    lead = f'{indent}{name}=('
    lines, current = [], lead
    for i, item in enumerate(value):
        piece = _fmt(item) + (', ' if i < len(value) - 1 else '),')
        if len(current) + len(piece.rstrip()) > 100:
            lines.append(current.rstrip())
            current = ' ' * len(lead)
        current += piece
    lines.append(current)
    return '\n'.join(lines) + '\n'


def _backbone_prompt_lines(method: Method, guidance: Guidance, indent: str) -> List[str]:
    """The prompt arguments of DAVPTViT for a method."""
    if not method.prompts:
        values = dict(num_prompts=0, guided_layers=(), num_guided_prompts=0)
    elif not method.hooks:
        values = dict(num_prompts=guidance.num_prompts, guided_layers=(),
                      num_guided_prompts=guidance.num_prompts)
    else:
        values = dict(num_prompts=guidance.num_prompts, guided_layers=guidance.guided_layers,
                      num_guided_prompts=guidance.num_guided_prompts)
    values['bias_tune'] = method.bias_tune
    return [f'{indent}{k}={_fmt(v)},' for k, v in values.items()]


#: The class-to-prompt map as the authors' code builds it, where the paper is silent (the paper:
#: cosine k-means): LayerNorm-normalized features, random-init k-means (1 run, 20 iterations),
#: an empty prompt keeps its centroid, updates start from the previous centroids.
MAP_OPTIONS = (('metric', 'cosine'), ('feature_norm', 'layer'), ('init', 'random'),
               ('n_init', 1), ('max_iter', 20), ('empty_cluster', 'keep'),
               ('warm_start', 'centroids'))
#: The authors' timing and data of the map in classification: only the last epoch's features,
#: a class unseen in it gets a random prompt, the initial pass runs the training pipeline.
CLS_MAP_TIMING = (('feature_window', 'last_epoch'), ('unseen_classes', 'random'),
                  ('pipeline', 'train'))
#: Loss inputs: the paper's, and the authors' code's.
LOSS_INPUTS = {
    'paper': (('pos_reduction', 'with_positives'), ('prompt_tap', 'query'),
              ('patch_tap', 'attn')),
    'authors': (('pos_reduction', 'all'), ('prompt_tap', 'raw'), ('patch_tap', 'input_mean')),
}
#: The cosine's floor of the paper rows ("to 1e-8 over the course of training").
PAPER_MIN_LR = 1e-8


def _hooks_block(guidance: Guidance, loss_inputs: Sequence[Tuple[str, object]],
                 map_args: Sequence[Tuple[str, object]], proxy_scale: float) -> str:
    """The two DA-VPT hooks: the class-to-prompt map and the metric loss."""
    lines = ['custom_hooks = [\n', '    dict(\n', "        type='ClassPromptMappingHook',\n"]
    lines += [_arg(' ' * 8, k, v) for k, v in map_args]
    lines[-1] = lines[-1].rstrip(',\n') + '),\n'
    lines += ['    dict(\n', "        type='PromptMetricLossHook',\n",
              f'        beta={guidance.beta!r},\n', f'        lam={guidance.lam!r},\n',
              '        margin=0.1,\n', '        alpha=32,\n',
              f'        proxy_scale={proxy_scale!r},\n']
    lines += [_arg(' ' * 8, k, v) for k, v in loss_inputs]
    lines += ['        patch_topk=None),\n', ']\n']
    return ''.join(lines)


def _method_note(method: Method, guidance: Guidance, layers: int) -> str:
    if method.full:
        return _comment('Every weight of the stock ViT trains.')
    if not method.prompts:
        return _comment('The ViT stays frozen without prompts; only the linear head trains.')
    if not method.hooks:
        return _comment(f'VPT-Deep: {guidance.num_prompts} prompts in each of the {layers} '
                        'layers; no metric loss, no class-to-prompt mapping.')
    note = (f'Guided layers {_fmt(guidance.guided_layers)} (0-based) with '
            f'{guidance.num_guided_prompts} prompts, {guidance.num_prompts} prompts in the other '
            f'layers, beta {guidance.beta}, lambda {guidance.lam}: the documented default (no '
            'released setting).')
    if method.bias_tune:
        note += (' DA-VPT+: the K and V biases of attention train too '
                 f'(bias_tune={method.bias_tune!r}).')
    return _comment(note)


def _row_note(cal: Calibration) -> str:
    """The origin of a DA-VPT classification config's per-task values."""
    origin = (f"The authors' setting for this task and backbone (row {cal.config} of "
              'tools/authors_hyperparameters.csv)' if cal.config else
              "No authors' config for this task and backbone (tools/authors_hyperparameters.csv)")
    guidance = cal.guidance
    note = (f'{origin}: guided layers {_fmt(guidance.guided_layers)} (0-based) with '
            f'{guidance.num_guided_prompts} prompts, {guidance.num_prompts} prompts in the other '
            f'layers, beta {guidance.beta}, lambda {guidance.lam}, proxy scale '
            f'{cal.proxy_scale}, frozen-backbone drop-path {cal.drop_path}, lr {cal.lr}, weight '
            f'decay {cal.weight_decay} (head weight: {cal.head_weight_decay}; biases and 1-D '
            'parameters: none), prompts initialized xavier x '
            f'{cal.prompt_init_scale}' +
            (', L2-normalized' if cal.prompt_norm == 'l2' else '') +
            (', attending to the patches only' if cal.prompt_attn_mask else '') +
            ', class-to-prompt map re-clustered ' +
            (f'at the end of epoch {cal.first_update} and every epoch after'
             if cal.first_update else 'never') +
            f', batches of {cal.samples_per_class} images per class slot.')
    if cal.notes:
        note += ' Gap rules: ' + '; '.join(cal.notes) + '.'
    if cal.config in PARSER_DROPPED:
        note += (" As released, the authors' parser drops keys of this file and runs: "
                 f'{PARSER_DROPPED[cal.config]}.')
    return _comment(note)


def _family_note(method: Method, backbone: PretrainedBackbone, task: Task, family: str,
                 cal: Calibration) -> str:
    if family == 'paper':
        text = ('Paper row: the paper where it speaks (' +
                ('the K and V biases train, ' if method.bias_tune else '') +
                ('images resized directly to 224x224, ' if task.benchmark == 'vtab' else '') +
                'batch 32, cosine to 1e-8, the paper\'s loss inputs), the authors\' code where it '
                'is silent (weights, prompt init, the map\'s LayerNorm / timing / unseen classes '
                '/ initial clustering, class-slot batches, the cosine over all 100 epochs, '
                'gradient clipping by value 10, fp16, CLS-token weight decay, head init, ' +
                ('pooling over prompts and patches, ' if backbone.key == 'mae' else '') +
                'PIL bicubic resizing).')
    else:
        if method.bias_tune:
            trained = ('their bias set: ' + ', '.join(cal.bias_parts) +
                       (' and the CLS token' if cal.learnable_cls_token else ''))
        else:
            trained = ("every bias flag off (DA-VPT has no bias tuning; each of the authors' "
                       'files is DA-VPT+)')
        text = ("Authors'-code row: the authors' code everywhere: their loss inputs (raw "
                'prompts, per-image mean of the block-input patches, positive term over every '
                f'prompt), {trained}, ' +
                ('short-side resize and centre crop, ' if task.benchmark == 'vtab' else '') +
                f'batch {cal.batch_size} with {cal.samples_per_class} images per class, cosine '
                f'to {cal.min_lr:g}.')
    return _comment(text)


def _multiplier(base: float, target: float) -> float:
    """The shortest decimal ``m`` with ``base * m == target`` exactly (as mmengine computes)."""
    if target == 0:
        return 0.0
    exact = target / base
    for digits in range(1, 18):
        mult = float(f'{exact:.{digits}g}')
        if base * mult == target:
            return mult
    raise ValueError(f'no multiplier gives weight decay {target!r} exactly on base {base!r}')


def _optim_block(cal: Calibration) -> str:
    """The optimizer with the authors' per-group weight decays, exactly.

    mmengine's custom keys scale the base weight decay (``decay_mult``): the base is the
    prompts' decay (the head's where the prompts get none), and each group's multiplier gives
    its decay exactly. The CLS token decays as the prompts (the authors decay every trained
    weight of more than one dimension); biases (every parameter named ``*bias*``, the tuned
    parts included), norms and 1-D parameters get none.
    """
    base = cal.weight_decay if cal.weight_decay else cal.head_weight_decay
    keys = {'backbone.prompts': _multiplier(base, cal.weight_decay),
            'backbone.cls_token': _multiplier(base, cal.weight_decay),
            'head.fc.weight': _multiplier(base, cal.head_weight_decay),
            'bias': 0.0}
    lines = [
        _comment(f'Weight decay: prompts and CLS token {cal.weight_decay}, head weight '
                 f'{cal.head_weight_decay}; biases, norms and 1-D parameters: none.'),
        'optim_wrapper = dict(\n',
        f'    optimizer=dict(lr={cal.lr!r}, weight_decay={base!r}),\n',
        '    paramwise_cfg=dict(\n',
        '        bias_decay_mult=0.0,\n',
        '        norm_decay_mult=0.0,\n',
        '        flat_decay_mult=0.0,\n',
        '        custom_keys={\n',
    ]
    lines += [f'            {key!r}: dict(decay_mult={mult!r}),\n' for key, mult in keys.items()]
    lines.append('        }))\n')
    return ''.join(lines)


def _schedule_block(warmup_lr: float, min_lr: float) -> str:
    return ('# timm\'s cosine (the authors\'): over all 100 epochs from 0, the warm-up included, '
            'per iteration.\n'
            'param_scheduler = [\n'
            '    dict(\n'
            "        type='WarmupCosineLR',\n"
            '        T_max=100,\n'
            '        warmup_epochs=10,\n'
            f'        warmup_start_lr={warmup_lr!r},\n'
            f'        eta_min={min_lr!r},\n'
            '        by_epoch=True,\n'
            '        begin=0,\n'
            '        end=100,\n'
            '        convert_to_iter_based=True),\n'
            ']\n')


def _reference_note(method: Method, backbone: PretrainedBackbone, task: Task) -> str:
    ref = REFERENCE_FGVC.get((backbone.key, method.key), {}).get(task.key)
    if ref is None:
        return ''
    return _comment(f'Paper (top-1 %, mean of 3 seeds): {ref}')


def _dataset_args(task: Task) -> str:
    if task.benchmark == 'fgvc':
        return (f'data_root={task.data_root!r}, num_classes={task.num_classes}, '
                f'image_dir={task.image_dir!r}')
    return f'data_root={task.data_root!r}, num_classes={task.num_classes}'


def _bench_title(task: Task) -> str:
    return 'FGVC' if task.benchmark == 'fgvc' else f'VTAB-1k {task.group}'


def render_davpt_cls(method: Method, backbone: PretrainedBackbone, task: Task,
                     family: str) -> str:
    """The text of one DA-VPT / DA-VPT+ classification config of a family."""
    cal = calibrations()[(backbone.key, task.key)]
    guidance = cal.guidance
    authors = family == 'authors'
    batch = cal.batch_size if authors else 32
    if task.benchmark == 'vtab' and authors:
        data_base = 'vtab_bs32_224_resize-crop.py'
    else:
        data_base = 'fgvc_bs32_224.py' if task.benchmark == 'fgvc' else 'vtab_bs32_224.py'
    lines = [
        HEADER, '#\n',
        _comment(f'{method.title} on {task.title} ({_bench_title(task)}), ViT-B/16 pre-trained '
                 f'{backbone.title}; 1 GPU x {batch} images, 100 epochs, 224x224.'),
        _family_note(method, backbone, task, family, cal),
        _row_note(cal),
        _reference_note(method, backbone, task) if not authors else '',
        '_base_ = [\n',
        "    '../../_base_/models/davpt_vit-b16_xavier-stacked.py',\n",
        f"    '../../_base_/datasets/{data_base}',\n",
        "    '../../_base_/schedules/adamw_fp16_100e_warmup10_timm-cosine.py',\n",
        "    '../../_base_/default_runtime_cls.py',\n",
        ']\n\n',
        'model = dict(\n',
        '    backbone=dict(\n',
        f'        num_prompts={guidance.num_prompts},\n',
        _arg(' ' * 8, 'guided_layers', guidance.guided_layers),
        f'        num_guided_prompts={guidance.num_guided_prompts},\n',
    ]
    if not authors:
        lines.append(_arg(' ' * 8, 'bias_tune', method.bias_tune))
    elif method.bias_tune:
        lines.append(_arg(' ' * 8, 'bias_tune', cal.bias_parts))
        lines.append(f'        learnable_cls_token={cal.learnable_cls_token!r},\n')
    else:
        lines.append('        bias_tune=None,\n')
    lines += [
        f'        prompt_init_scale={cal.prompt_init_scale!r},\n',
        f'        frozen_drop_path_rate={cal.drop_path!r},\n',
    ]
    if cal.prompt_norm is not None:
        lines.append(f'        prompt_norm={cal.prompt_norm!r},\n')
    if cal.prompt_attn_mask is not None:
        lines.append(f'        prompt_attn_mask={cal.prompt_attn_mask!r},\n')
    if backbone.davpt_out_type != 'cls_token':
        lines.append(f'        out_type={backbone.davpt_out_type!r},\n')
    lines += [
        f"        init_cfg=dict(type='Pretrained', checkpoint={backbone.checkpoint!r})),\n",
        f'    data_preprocessor=dict(num_classes={task.num_classes}),\n',
        f'    head=dict(num_classes={task.num_classes}))\n\n',
    ]
    dataset = _dataset_args(task)
    if not cal.class_balanced:
        raise ValueError(f'{backbone.key} {task.key}: every authors\' file samples by class')
    lines += [
        'train_dataloader = dict(\n',
        f'    batch_size={batch},\n',
        '    sampler=dict(\n',
        "        type='ClassBalancedSampler', mode='class_slots', "
        f'batch_size={batch}, samples_per_class={cal.samples_per_class}),\n',
        f'    dataset=dict({dataset}))\n',
        f'val_dataloader = dict(dataset=dict({dataset}))\n',
        f'test_dataloader = dict(dataset=dict({dataset}))\n',
    ]
    if batch != 32:
        lines.append(f'auto_scale_lr = dict(base_batch_size={batch})\n')
    lines.append('\n')
    lines += [_optim_block(cal), _schedule_block(cal.warmup_lr,
                                                 cal.min_lr if authors else PAPER_MIN_LR), '\n']
    map_args = (('samples_per_class', 10), ('interval', None),
                ('first_update', cal.first_update)) + CLS_MAP_TIMING + MAP_OPTIONS
    if authors and cal.zero_scale:
        lines.append(_comment("The file's proxy scale 0 makes both metric terms constant: "
                              'beta = lambda = 0 trains the same.'))
        guidance = Guidance(guidance.guided_layers, guidance.num_guided_prompts,
                            guidance.num_prompts, 0.0, 0.0, guidance.source)
    lines.append(_hooks_block(guidance, LOSS_INPUTS[family], map_args, cal.proxy_scale))
    return ''.join(lines)


def render_baseline_cls(method: Method, backbone: PretrainedBackbone, task: Task) -> str:
    """The text of one baseline classification config (VPT-Deep, linear probe, full FT)."""
    cal = calibrations()[(backbone.key, task.key)]
    guidance = Guidance(num_prompts=task.vpt_deep_prompts)
    note = _method_note(method, guidance, 12)
    lr = method.lr
    if method.key == 'vpt-deep':
        if cal.config:
            lr = cal.lr
            note += _comment(f"lr {lr}: the authors' DA-VPT lr for this task and backbone "
                             f'({cal.config}), so that the comparison is like for like.')
        else:
            note += _comment(f"lr {lr}: VPT-Deep's default (no authors' config for this task "
                             'and backbone).')
    model_base = 'vit-b16_full-ft.py' if method.full else 'davpt_vit-b16.py'
    data_base = 'fgvc_bs32_224.py' if task.benchmark == 'fgvc' else 'vtab_bs32_224.py'
    lines = [
        HEADER, '#\n',
        _comment(f'{method.title} on {task.title} ({_bench_title(task)}), ViT-B/16 pre-trained '
                 f'{backbone.title}; 1 GPU x 32 images, 100 epochs, 224x224.'),
        note,
        _reference_note(method, backbone, task),
        '_base_ = [\n',
        f"    '../../_base_/models/{model_base}',\n",
        f"    '../../_base_/datasets/{data_base}',\n",
        "    '../../_base_/schedules/adamw_bs32_100e_warmup10_cosine.py',\n",
        "    '../../_base_/default_runtime_cls.py',\n",
        ']\n\n',
        'model = dict(\n',
        '    backbone=dict(\n',
    ]
    if not method.full:
        lines += [line + '\n' for line in _backbone_prompt_lines(method, guidance, ' ' * 8)]
    dataset = _dataset_args(task)
    lines += [
        f"        init_cfg=dict(type='Pretrained', checkpoint={backbone.checkpoint!r})),\n",
        f'    data_preprocessor=dict(num_classes={task.num_classes}),\n',
        f'    head=dict(num_classes={task.num_classes}))\n\n',
    ]
    lines += [f'{loader}_dataloader = dict(dataset=dict({dataset}))\n'
              for loader in ('train', 'val', 'test')]
    lines.append('\n')
    lines.append(f'optim_wrapper = dict(optimizer=dict(lr={lr!r}, '
                 f'weight_decay={method.weight_decay!r}))\n')
    return ''.join(lines)


def render_cls(method: Method, backbone: PretrainedBackbone, task: Task,
               family: str = 'paper') -> str:
    """The text of one classification config."""
    if method.hooks:
        return render_davpt_cls(method, backbone, task, family)
    if family != 'paper':
        raise ValueError(f"{method.key} has no authors'-code rows")
    return render_baseline_cls(method, backbone, task)


def _seg_aux_heads(num_classes: int) -> str:
    """The three auxiliary heads, one written once, read the backbone's outputs 0, 1 and 2."""
    return ('        dict(\n'
            "            type='SETRUPHead',\n"
            '            in_channels=1024,\n'
            '            channels=256,\n'
            '            in_index=index,\n'
            f'            num_classes={num_classes},\n'
            '            dropout_ratio=0,\n'
            '            norm_cfg=norm_cfg,\n'
            "            act_cfg=dict(type='ReLU'),\n"
            '            num_convs=2,\n'
            '            kernel_size=3,\n'
            '            align_corners=False,\n'
            "            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, "
            'loss_weight=0.4))\n'
            '        for index in range(3)\n')


def render_seg_heads_base(task: SegTask) -> str:
    """The ``_base_`` model file of one segmentation task: mmseg's SETR-PUP with the heads.

    The auxiliary heads are a list, which a config that inherits them can only replace whole,
    and their number of classes is the task's: hence one such file per task, which every
    method's config of the task inherits.
    """
    return ''.join([
        HEADER, '#\n',
        _comment(f'mmseg\'s SETR-PUP with the heads of the paper\'s {task.title} configs '
                 f'({task.num_classes} classes), which every method\'s config of the task '
                 'inherits: the decode head reads the fourth backbone output and the three '
                 'auxiliary heads (2 convolutions each, loss weight 0.4) the first three; the '
                 'configs set the backbone (its outputs: layers 9, 12, 18 and 24, 1-based), the '
                 'crop size and the test mode.'),
        "_base_ = 'mmseg::_base_/models/setr_pup.py'\n\n",
        "norm_cfg = dict(type='SyncBN', requires_grad=True)\n",
        'model = dict(\n',
        f'    decode_head=dict(num_classes={task.num_classes}, in_index=3),\n',
        '    auxiliary_head=[\n',
        _seg_aux_heads(task.num_classes),
        '    ])\n',
    ])


#: The authors' segmentation backbone (segmentation/models/vit.py): prompts xavier / 8 and
#: loss_vpt_scale_ratio 5 by default.
SEG_PROMPT_INIT_SCALE = 0.125
SEG_PROXY_SCALE = 5.0


def render_seg(method: Method, task: SegTask) -> str:
    """The text of one segmentation config."""
    guidance = task.guidance
    crop = task.crop
    ref = REFERENCE_SEG.get((task.key, method.key))
    lines = [
        HEADER, '#\n',
        _comment(f'{method.title} on {task.title} ({task.num_classes} classes), SETR-PUP on '
                 f'ViT-L/16 pre-trained supervised on IN-21k; 8 GPUs x 2 images, '
                 f'{task.iters // 1000}k iterations, {crop}x{crop} crops, slide inference '
                 f'(stride {task.stride}). As mmseg\'s setr_vit-l_pup_8xb2-160k_ade20k-512x512.py, '
                 'except that the decode head and the three auxiliary heads read layers 24, 9, 12 '
                 'and 18 (1-based), as the paper.'),
        _method_note(method, guidance, 24),
    ]
    if method.hooks:
        lines.append(_comment(
            "Where the paper is silent, the authors' segmentation code: prompts initialized "
            'xavier / 8, proxy scale 5, the map\'s LayerNorm-normalized cosine k-means with '
            'random initialization (1 run, 20 iterations).'))
    if ref is not None:
        lines.append(_comment(f'Paper (mIoU %, single-scale / multi-scale): {ref[0]} / {ref[1]}'))
    lines += [
        _comment('mIoU-MS: test with the TTA model (tta_model with tta_pipeline: scales 0.5 to '
                 '1.75 and horizontal flip).'),
        '_base_ = [\n',
        f"    '../_base_/models/{osp.basename(seg_heads_base_path(task))}',\n",
        f'    {task.dataset_base!r},\n',
        f'    {task.schedule_base!r},\n',
        "    '../_base_/default_runtime_seg.py',\n",
        ']\n\n',
        f'crop_size = ({crop}, {crop})\n',
        'model = dict(\n',
        '    data_preprocessor=dict(size=crop_size),\n',
        '    pretrained=None,\n',
        '    backbone=dict(\n',
        f"        type={'VisionTransformer' if method.full else 'DAVPTViT'!r},\n",
        '        embed_dims=1024,\n',
        '        num_layers=24,\n',
        '        num_heads=16,\n',
        f'        img_size=({crop}, {crop}),\n',
        '        out_indices=(8, 11, 17, 23),\n',
        '        with_cls_token=True,\n',
        '        final_norm=False,\n',
        '        patch_bias=True,  # Google / timm ViTs have a patch-embedding bias\n',
        "        interpolate_mode='bilinear',\n",
        '        drop_rate=0.0,\n',
    ]
    if not method.full:
        lines += [line + '\n' for line in _backbone_prompt_lines(method, guidance, ' ' * 8)]
    if method.hooks:
        lines += ["        prompt_init='xavier_stacked',\n",
                  f'        prompt_init_scale={SEG_PROMPT_INIT_SCALE!r},\n']
    lines += [
        f"        init_cfg=dict(type='Pretrained', checkpoint={SEG_BACKBONE.checkpoint!r})),\n",
        f"    test_cfg=dict(mode='slide', crop_size=crop_size, stride=({task.stride}, "
        f'{task.stride})))\n\n',
        '# 8 GPUs x 2 images = 16 per iteration, as SETR.\n',
        'train_dataloader = dict(batch_size=2)\n',
        'val_dataloader = dict(batch_size=1)\n',
        'test_dataloader = val_dataloader\n',
    ]
    if method.hooks:
        lines += [
            '\n', f'# The class-to-prompt map is updated every {task.mapping_interval} '
            'iterations (one pass over the training set).\n',
            _hooks_block(guidance, LOSS_INPUTS['paper'],
                         (('samples_per_class', 10),
                          ('interval', task.mapping_interval)) + MAP_OPTIONS,
                         SEG_PROXY_SCALE)
        ]
    return ''.join(lines)


def render_alias(alias: str, target: str) -> str:
    """A short-named config that inherits the long-named one."""
    rel = osp.relpath(target, osp.dirname(alias))
    if not rel.startswith('.'):
        rel = './' + rel
    return (f'{HEADER}#\n# Short name of {osp.basename(target)}.\n'
            f"_base_ = '{rel}'\n")


def render_all() -> Dict[str, str]:
    """Every generated config: path relative to the repository root -> text."""
    files = {}
    for method in CLS_METHODS:
        for backbone in BACKBONES:
            for task in TASKS:
                files[cls_config_path(method, backbone, task)] = render_cls(
                    method, backbone, task)
                if method.hooks:
                    files[cls_config_path(method, backbone, task, 'authors')] = render_cls(
                        method, backbone, task, 'authors')
    for task in SEG_TASKS:
        files[seg_heads_base_path(task)] = render_seg_heads_base(task)
    for method in SEG_METHODS:
        for task in SEG_TASKS:
            files[seg_config_path(method, task)] = render_seg(method, task)
    for alias, target in ALIASES.items():
        files[alias] = render_alias(alias, target)
    return files


# ----------------------------------------------------------------------------- writing
def _existing(root: str) -> List[str]:
    found = []
    for folder in GENERATED_DIRS:
        for dirpath, _, names in os.walk(osp.join(root, folder)):
            for name in names:
                if name.endswith('.py'):
                    found.append(osp.relpath(osp.join(dirpath, name), root))
    return found


def check(root: str) -> List[str]:
    """Problems of the configs under ``root``: missing, outdated or extra files."""
    files = render_all()
    problems = []
    for path, text in sorted(files.items()):
        full = osp.join(root, path)
        if not osp.isfile(full):
            problems.append(f'missing: {path}')
            continue
        with open(full, encoding='utf-8') as f:
            if f.read() != text:
                problems.append(f'outdated: {path}')
    for path in sorted(set(_existing(root)) - set(files)):
        problems.append(f'not generated (remove it or add it to the tables): {path}')
    return problems


def write_all(root: str) -> Tuple[int, List[str]]:
    """Write every config under ``root`` and remove generated-folder files no table names.

    Returns:
        tuple: The number of files written or changed, and the paths removed.
    """
    files = render_all()
    changed = 0
    for path, text in files.items():
        full = osp.join(root, path)
        if osp.isfile(full):
            with open(full, encoding='utf-8') as f:
                if f.read() == text:
                    continue
        os.makedirs(osp.dirname(full), exist_ok=True)
        with open(full, 'w', encoding='utf-8') as f:
            f.write(text)
        changed += 1
    removed = sorted(set(_existing(root)) - set(files))
    for path in removed:
        os.remove(osp.join(root, path))
    return changed, removed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default=osp.dirname(osp.dirname(osp.abspath(__file__))),
                        help='repository root (default: the one holding this script)')
    parser.add_argument('--check', action='store_true',
                        help='only report configs that differ from the tables; exit 1 if any')
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.root)
        for problem in problems:
            print(problem)
        print(f'{len(render_all())} generated configs; {len(problems)} not current')
        return 1 if problems else 0
    changed, removed = write_all(args.root)
    for path in removed:
        print(f'removed {path}')
    print(f'{len(render_all())} generated configs; {changed} written, {len(removed)} removed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
