"""Helpers shared by the config tests: the authors' reference release and the issue-22 options.

``reference_root()`` locates the authors' released code (:func:`tests.utils.reference_dir`:
``$MMDA_VPT_REFERENCE``, else ``<repo>/../shared/reference/DA-VPT``); tests that read it skip
when it is absent. ``missing_options()`` names the issue-22 options the configs use that this
checkout does not implement yet; tests that build or train the configs skip while any is missing.
"""
import argparse
import contextlib
import copy
import glob
import importlib.util
import inspect
import io
import os.path as osp
import tempfile
from typing import Dict, List

from mmengine.config import Config

from tests.reference_code import read_yaml, reference_module
from tests.utils import REPO, reference_dir

__all__ = ['reference_root', 'read_yaml', 'parse_like_authors',
           'authors_defaults',
           'authors_yaml_files', 'missing_options', 'FILE_KEYS', 'load_config',
           'cache_package_bases', 'trainable_count']

#: The authors' model_name (params.py default 'vit-B') -> this project's backbone key.
_BACKBONE_OF_MODEL = {'vit-B': 'in21k', 'mae-B': 'mae', 'moco-B': 'mocov3'}
#: The authors' ``dataset`` value -> this project's task key.
_TASK_OF_DATASET = {
    'cub': 'cub', 'nabirds': 'nabirds', 'flowers': 'flowers', 'dogs': 'dogs', 'cars': 'cars',
    'caltech101': 'vtab-caltech101', 'cifar100': 'vtab-cifar100',
    'clevr_count': 'vtab-clevr-count', 'clevr_dist': 'vtab-clevr-dist',
    'retinopathy': 'vtab-retinopathy', 'dmlab': 'vtab-dmlab', 'dsprites_loc': 'vtab-dsprites-loc',
    'dsprites_ori': 'vtab-dsprites-ori', 'dtd': 'vtab-dtd', 'eurosat': 'vtab-eurosat',
    'kitti': 'vtab-kitti', 'oxford_flowers102': 'vtab-flowers102',
    'oxford_iiit_pet': 'vtab-pets', 'patch_camelyon': 'vtab-camelyon',
    'resisc45': 'vtab-resisc45', 'smallnorb_azi': 'vtab-smallnorb-azi',
    'smallnorb_ele': 'vtab-smallnorb-ele', 'sun397': 'vtab-sun397', 'svhn': 'vtab-svhn',
}
#: The (backbone, task) of each file of the release, from its ``model_name`` and ``dataset``.
FILE_KEYS: Dict[str, tuple] = {}


_CONFIG_CACHE: Dict[str, Config] = {}
_ORIGINAL_CFG_PATH = Config._get_cfg_path
_EXTERNAL_PATHS: Dict[str, tuple] = {}


def _cached_cfg_path(cfg_path: str, filename: str) -> tuple:
    """mmengine's ``Config._get_cfg_path``, remembered for ``package::path`` bases.

    For each ``mmpretrain::``/``mmseg::`` base, mmengine reloads ``pkg_resources`` and parses
    every metafile of the package (200+ YAML files, about a second); with the answer remembered
    per base, loading the 500+ configs takes seconds instead of minutes. The answers are
    mmengine's own (they do not depend on the including file).
    """
    if '::' not in cfg_path:
        return _ORIGINAL_CFG_PATH(cfg_path, filename)
    if cfg_path not in _EXTERNAL_PATHS:
        _EXTERNAL_PATHS[cfg_path] = _ORIGINAL_CFG_PATH(cfg_path, filename)
    return _EXTERNAL_PATHS[cfg_path]


@contextlib.contextmanager
def cache_package_bases():
    """Within: mmengine looks each ``package::path`` base up once (see above)."""
    Config._get_cfg_path = staticmethod(_cached_cfg_path)
    try:
        yield
    finally:
        Config._get_cfg_path = staticmethod(_ORIGINAL_CFG_PATH)


def load_config(path: str) -> Config:
    """The config at ``path`` (relative to the repository), loaded once per test run; a copy."""
    if path not in _CONFIG_CACHE:
        with cache_package_bases():
            _CONFIG_CACHE[path] = Config.fromfile(osp.join(REPO, path))
    return copy.deepcopy(_CONFIG_CACHE[path])


#: The authors' released code, or None (the tests' one locator, under the name these tests use).
reference_root = reference_dir


def authors_yaml_files() -> Dict[str, str]:
    """Every released classification config: ``{bench}_{name}`` (the table's name) -> path."""
    root = reference_root()
    files = {}
    for path in sorted(glob.glob(osp.join(root, 'configs', '*', '*.yaml'))):
        bench = osp.basename(osp.dirname(path))
        name = f'{bench}_{osp.splitext(osp.basename(path))[0]}'
        files[name] = path
        values = read_yaml(path)
        FILE_KEYS[name] = (_BACKBONE_OF_MODEL[values.get('model_name', 'vit-B')],
                           _TASK_OF_DATASET[values['dataset']])
    return files


def parse_like_authors(path: str) -> argparse.Namespace:
    """The arguments the authors' ``train.py`` runs with for a config file: their own parser
    (``params.py``: its defaults, then ``update_args_from_file_colon``)."""
    params = reference_module('params.py')
    parser = argparse.ArgumentParser()
    for add in (params.model_parameters, params.prompt_parameters, params.dataset_parameters,
                params.training_parameters, params.tuning_parameters,
                params.criterion_parameters):
        parser = add(parser)
    parser.add_argument('--config', type=str)
    args = parser.parse_args(['--config', path])
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the file it reads
        return params.update_args_from_file_colon(path, args)


def authors_defaults() -> argparse.Namespace:
    """The defaults of the authors' ``params.py``: their parser on an empty config file."""
    with tempfile.TemporaryDirectory() as tmp:
        empty = osp.join(tmp, 'empty.yaml')
        open(empty, 'w').close()
        return parse_like_authors(empty)


def _fails(build) -> bool:
    try:
        build()
    except (TypeError, ValueError, KeyError, AssertionError):
        return True
    return False


def missing_options() -> List[str]:
    """The issue-22 options the generated configs use that this checkout lacks (tried, not
    looked up: each is built once with the value the configs give it)."""
    import mmda_vpt  # noqa: F401  (registration)
    from mmengine.registry import PARAM_SCHEDULERS
    from mmpretrain.registry import MODELS

    from mmda_vpt.datasets.class_balanced_sampler import ClassBalancedSampler
    from mmda_vpt.engine.hooks import ClassPromptMappingHook
    from mmda_vpt.models.backbones.prompt_options import PromptOptions
    from mmda_vpt.mapping.class_prompt_map import MapOptions
    tiny = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    checks = {
        "prompt_init='xavier_stacked', prompt_init_scale": lambda: PromptOptions(
            prompt_init='xavier_stacked', prompt_init_scale=0.125),
        'bias_tune=(parts)': lambda: PromptOptions(bias_tune=('k_bias', 'patch_embed_bias')),
        "prompt_norm='l2', prompt_attn_mask='patches_only'": lambda: PromptOptions(
            prompt_norm='l2', prompt_attn_mask='patches_only'),
        "out_type='avg_prompts_patches'": lambda: MODELS.build(dict(
            type='DAVPTViT', arch=tiny, img_size=32, patch_size=16,
            out_type='avg_prompts_patches')),
        "MapOptions(feature_norm='layer', init='random')": lambda: MapOptions(
            feature_norm='layer', init='random'),
        "ClassPromptMappingHook(feature_window, unseen_classes, pipeline='train')":
            lambda: ClassPromptMappingHook(feature_window='last_epoch', unseen_classes='random',
                                           pipeline='train'),
        "ClassBalancedSampler(mode='class_slots', batch_size)": lambda: inspect.signature(
            ClassBalancedSampler).bind(None, mode='class_slots', batch_size=4),
        'WarmupCosineLR': lambda: PARAM_SCHEDULERS.get('WarmupCosineLR') or {}['missing'],
        'mmda_vpt.compat.amp_fallback': lambda: importlib.util.find_spec(
            'mmda_vpt.compat.amp_fallback') or {}['missing'],
    }
    return [name for name, build in checks.items() if _fails(build)]


def trainable_count(parts, cls_token: bool, prompts: int, dim: int, layers: int = 12) -> int:
    """Values a ViT trains with these bias parts: per-block parts in every layer, the patch
    embedding's bias and the final norm once, the CLS token, the prompts."""
    once = {'patch_embed_bias', 'final_norm_weight', 'final_norm_bias'}
    per_block = len(set(parts) - once)
    return (per_block * layers + len(set(parts) & once) + int(cls_token)) * dim + prompts * dim
