"""Writing and checking every generated config under a repository root."""
import os
import os.path as osp
from typing import Dict, List, Tuple

from .blocks import CLS_HOOKS_BASE, SEG_HOOKS_BASE
from .cls_configs import render_cls, render_cls_hooks_base
from .metafile import render_metafiles
from .names import ALIASES, cls_config_path, seg_config_path, seg_heads_base_path
from .seg_configs import (render_alias, render_seg, render_seg_heads_base,
                          render_seg_hooks_base)
from .tables import BACKBONES, CLS_METHODS, SEG_METHODS, SEG_TASKS, TASKS

__all__ = ['GENERATED_DIRS', 'check', 'render_all', 'write_all']

GENERATED_DIRS = ('configs/da_vpt', 'configs/baselines')

def render_all() -> Dict[str, str]:
    """Every generated file: path relative to the repository root -> text.

    The configs, the ``_base_`` files they share (the segmentation tasks' heads, the DA-VPT
    hooks), the short-named aliases, each family's ``metafile.yml`` and ``model-index.yml``.
    """
    files = {CLS_HOOKS_BASE: render_cls_hooks_base(), SEG_HOOKS_BASE: render_seg_hooks_base()}
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
    files.update(render_metafiles())
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

