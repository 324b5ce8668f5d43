"""Write ``best.py``: the searched config with the best trial's values, for training."""
import copy
import os
import os.path as osp
from typing import TYPE_CHECKING, Any, Dict, Mapping

from mmengine.config import ConfigDict

from .config_paths import set_path
from .table import format_value

if TYPE_CHECKING:
    from .search import Search

__all__ = ['best_overrides', 'write_best_config']


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


def _opt(value: Any) -> str:
    """A value as ``--cfg-options`` reads it back."""
    if isinstance(value, (list, tuple)):
        o, c = ('[', ']') if isinstance(value, list) else ('(', ')')
        return f'"{o}{",".join(_opt(v) for v in value)}{c}"'
    return str(value)


def best_overrides(search: 'Search', values: Mapping[str, Any]) -> Dict[str, Any]:
    """The nested overrides that turn CONFIG into the trial with ``values``.

    Dicts are written down to the changed keys (a child config merges them); a list on the
    way, such as ``custom_hooks``, is written whole (a child config replaces lists).

    Args:
        search (Search): The search.
        values (Mapping): The trial's value of each searched parameter, by name.

    Returns:
        dict: The overrides, the paths a preset replaced marked ``_delete_``.
    """
    cfg = copy.deepcopy(search.cfg)
    for param in search.params:
        for path in param.paths:
            set_path(cfg._cfg_dict, path, values[param.name])
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


def write_best_config(search: 'Search', best: dict, path: str) -> None:
    """Writes ``best.py``: ``_base_ = CONFIG`` and the overrides of :func:`best_overrides`.

    The validation split's carve (``--val-cfg-options``) is left out, named in a comment.

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
        f'# Written by mmda_vpt.tune (tools/tune.py): the best of {best["finished"]} finished '
        f'trials of the search in {search.spec.work_dir},',
        f'# trial {best["number"]}, {search.metric} {format_value(best["value"])} on the '
        f'validation split, with {best["params"]}.',
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
