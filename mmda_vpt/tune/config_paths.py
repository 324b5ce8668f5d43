"""Resolve the searched keys (short names and dotted paths) to paths into a config."""
from typing import Any, Dict, List, Tuple, Union

from mmengine.config import Config

__all__ = ['PathKey', 'SHORT_NAMES', 'option_path', 'resolve_key', 'resolve_path', 'set_path',
           'tied_paths', 'type_matches']

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

#: A resolved config path: dict keys and list indices.
PathKey = Tuple[Union[str, int], ...]

#: The training batch size and the config paths that must hold the same value.
_TRAIN_BATCH = ('train_dataloader', 'batch_size')
_SLOTS_SAMPLER_BATCH = ('train_dataloader', 'sampler', 'batch_size')


def type_matches(item: Any, name: str) -> bool:
    """Whether ``item`` is a dict whose ``type`` is ``name`` (or ends in ``.name``)."""
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
                matches = [k for k, item in enumerate(node) if type_matches(item, comp)]
                if not matches:
                    raise KeyError(f'no {comp} in {where}')
                index = matches[0]
            path.append(index)
            node = node[index]
            i += 1
        else:
            raise KeyError(f'{where} is a {type(node).__name__}, not a dict or a list')
    return tuple(path)


def set_path(cfg: Any, path: PathKey, value: Any) -> None:
    """Sets ``value`` at a resolved ``path`` of a config dict (in place)."""
    node = cfg
    for comp in path[:-1]:
        node = node[comp]
    node[path[-1]] = value


def option_path(cfg: Config, key: str) -> PathKey:
    """The path ``Config.merge_from_dict`` gives an option key (list indices as ints).

    Args:
        cfg (Config): The config the option was merged into.
        key (str): The option's dotted key.

    Returns:
        tuple: The path's keys and indices.
    """
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
    if type_matches(sampler, 'ClassBalancedSampler') and sampler.get('mode') == 'class_slots':
        return [_SLOTS_SAMPLER_BATCH]
    return []


def resolve_key(cfg: Config, key: str) -> PathKey:
    """The resolved path of a searched key: a short name or a config path of ``cfg``.

    Args:
        cfg (Config): The config.
        key (str): A short name (:data:`SHORT_NAMES`) or a dotted config path.

    Returns:
        tuple: The path's keys and indices.

    Raises:
        ValueError: One line naming the key and what is missing from the config.
    """
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
