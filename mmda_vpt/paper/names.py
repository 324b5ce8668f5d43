"""The file names of the generated configs: long (OpenMMLab style) names and the short aliases."""
import os.path as osp
from typing import Dict

from .authors import calibrations
from .tables import (AUTHORS_SUFFIX, FAMILIES, SEG_BACKBONE, SEG_METHODS, SEG_TASKS, Method,
                     PretrainedBackbone, SegTask, Task)

__all__ = ['ALIASES', 'cls_config_path', 'seg_config_path', 'seg_heads_base_path']

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
