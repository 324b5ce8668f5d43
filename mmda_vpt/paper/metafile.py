"""The ``metafile.yml`` of each config family and the root ``model-index.yml`` (OpenMMLab style).

As mmpretrain's ``configs/*/metafile.yml``: one collection per method, one model per generated
config with its config path and, where the paper reports one, its number (top-1 % of the paper
rows; mIoU single-scale and ``mIoU(ms+flip)`` of the segmentation configs). The short-named
aliases are not models of their own. ``mim`` reads ``model-index.yml``.
"""
import os.path as osp
from typing import Dict, List, Optional

import yaml

from .authors import calibrations
from .blocks import HEADER
from .names import cls_config_path, seg_config_path
from .reference import REFERENCE_FGVC, REFERENCE_SEG
from .tables import (BACKBONES, CLS_METHODS, FAMILIES, SEG_BACKBONE, SEG_METHODS, SEG_TASKS,
                     TASKS, Method, PretrainedBackbone, SegTask, Task)

__all__ = ['MODEL_INDEX', 'render_metafiles']

#: The root index ``mim`` reads.
MODEL_INDEX = 'model-index.yml'

_DAVPT_PAPER = dict(Title='DA-VPT: Semantic-Guided Visual Prompt Tuning for Vision Transformers',
                    URL='https://arxiv.org/abs/2505.23694')
_VPT_PAPER = dict(Title='Visual Prompt Tuning', URL='https://arxiv.org/abs/2203.12119')
#: Method key -> (paper, code) of its collection; None where the method has no paper of its own.
_SOURCES = {
    'davpt': (_DAVPT_PAPER, 'https://github.com/Noahsark/DA-VPT'),
    'davpt-plus': (_DAVPT_PAPER, 'https://github.com/Noahsark/DA-VPT'),
    'vpt-deep': (_VPT_PAPER, 'https://github.com/KMnP/vpt'),
    'linear': (None, None),
    'full-ft': (None, None),
}


def _collection(method: Method) -> dict:
    paper, code = _SOURCES[method.key]
    entry = dict(Name=method.title, Metadata=dict(Architecture=['Vision Transformer']))
    if paper is not None:
        entry['Paper'] = dict(paper)
    entry['README'] = 'README.md'
    if code is not None:
        entry['Code'] = dict(URL=code)
    return entry


def _cls_model(method: Method, backbone: PretrainedBackbone, task: Task, family: str) -> dict:
    path = cls_config_path(method, backbone, task, family)
    batch = calibrations()[(backbone.key, task.key)].batch_size if family == 'authors' else 32
    entry = {
        'Name': osp.basename(path)[:-3],
        'In Collection': method.title,
        'Metadata': {'Training Data': [task.title], 'Pre-trained': backbone.title,
                     'Batch Size': batch, 'Epochs': 100},
    }
    ref: Optional[float] = None
    if family == 'paper':
        ref = REFERENCE_FGVC.get((backbone.key, method.key), {}).get(task.key)
    if ref is not None:
        entry['Results'] = [dict(Dataset=task.title, Task='Image Classification',
                                 Metrics={'Top 1 Accuracy': ref})]
    entry['Config'] = path
    return entry


def _seg_model(method: Method, task: SegTask) -> dict:
    path = seg_config_path(method, task)
    entry = {
        'Name': osp.basename(path)[:-3],
        'In Collection': method.title,
        'Metadata': {'Training Data': [task.title], 'Pre-trained': SEG_BACKBONE.title,
                     'Batch Size': 16, 'Iterations': task.iters},
    }
    ref = REFERENCE_SEG.get((task.key, method.key))
    if ref is not None:
        entry['Results'] = [dict(Dataset=task.title, Task='Semantic Segmentation',
                                 Metrics={'mIoU': ref[0], 'mIoU(ms+flip)': ref[1]})]
    entry['Config'] = path
    return entry


def _dump(data: dict) -> str:
    return HEADER + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)


def render_metafiles() -> Dict[str, str]:
    """Every config family's ``metafile.yml`` and ``model-index.yml``: path -> text."""
    files = {}
    for folder in ('da_vpt', 'baselines'):
        methods = [m for m in CLS_METHODS if m.folder == folder]
        models: List[dict] = []
        for method in methods:
            families = FAMILIES if method.hooks else ('paper', )
            for family in families:
                for backbone in BACKBONES:
                    for task in TASKS:
                        models.append(_cls_model(method, backbone, task, family))
        for method in SEG_METHODS:
            if method.folder == folder:
                models += [_seg_model(method, task) for task in SEG_TASKS]
        path = osp.join('configs', folder, 'metafile.yml')
        files[path] = _dump(dict(Collections=[_collection(m) for m in methods], Models=models))
    files[MODEL_INDEX] = _dump(dict(Import=sorted(files)))
    return files
