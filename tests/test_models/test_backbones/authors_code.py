"""The authors' released DA-VPT code, loaded beside ours for the backbone tests.

The code is found by :func:`tests.utils.reference_dir` (``$MMDA_VPT_REFERENCE``, else
``../shared/reference/DA-VPT`` beside the repository); tests that need it skip without it. Their
modules import each other as top-level packages (``models``, ``utils``, ``Dataset``, ``params``),
so they are imported with the folder on ``sys.path`` and taken out of ``sys.modules`` afterwards;
third-party modules that only their data code needs are stubbed where absent. Their model code
allocates a few counters on ``'cuda'``: those counters are skipped here (they hold no parameters).
"""
import argparse
import contextlib
import glob
import importlib
import io
import os.path as osp
import sys
import types
from functools import partial
from typing import Dict, Iterator, List, Optional
from unittest import mock

import torch
import torch.nn as nn

from tests.reference_code import read_yaml

__all__ = ['NUM_CLASSES', 'yaml_paths', 'read_yaml_row', 'model_creator',
           'authors_args', 'build_authors_model']

#: Classes of each dataset the authors' configs name (their code counts them in the data).
NUM_CLASSES = {
    'cub': 200, 'nabirds': 555, 'flowers': 102, 'cars': 196, 'dogs': 120,
    'caltech101': 102, 'cifar100': 100, 'clevr_count': 8, 'clevr_dist': 6, 'dmlab': 6,
    'dsprites_loc': 16, 'dsprites_ori': 16, 'dtd': 47, 'eurosat': 10, 'kitti': 4,
    'oxford_flowers102': 102, 'oxford_iiit_pet': 37, 'patch_camelyon': 2, 'resisc45': 45,
    'retinopathy': 5, 'smallnorb_azi': 18, 'smallnorb_ele': 9, 'sun397': 397, 'svhn': 10,
}

_TOP_LEVEL = ('models', 'Dataset', 'utils', 'params', 'model_creator')
_CACHE: Dict[str, types.ModuleType] = {}


def yaml_paths(ref: str) -> List[str]:
    """Every released config of theirs (``configs/**/*.yaml``), sorted."""
    return sorted(glob.glob(osp.join(ref, 'configs', '**', '*.yaml'), recursive=True))


def read_yaml_row(path: str) -> Dict[str, str]:
    """A config's ``key:value`` lines as strings, a ``-`` in a key read as ``_``."""
    return {key.lstrip('-').replace('-', '_'): value for key, value in read_yaml(path).items()}


def _stubs() -> Dict[str, types.ModuleType]:
    """Stand-ins for the modules their data code imports, where they are not installed."""
    stubs = {}
    wanted = {
        'termcolor': dict(colored=lambda text, *args, **kwargs: text),
        'tqdm': dict(tqdm=lambda iterable, *args, **kwargs: iterable),
        'pandas': {},
        'yaml': {},
    }
    for name, attrs in wanted.items():
        try:
            importlib.import_module(name)
        except ImportError:
            stubs[name] = types.ModuleType(name)
            stubs[name].__dict__.update(attrs)
    try:
        importlib.import_module('scipy.optimize')
    except ImportError:
        stubs['scipy'] = types.ModuleType('scipy')
        stubs['scipy.optimize'] = types.ModuleType('scipy.optimize')
        stubs['scipy.optimize'].linprog = None
        stubs['scipy'].optimize = stubs['scipy.optimize']
    return stubs


@contextlib.contextmanager
def _reference_imports(ref: str) -> Iterator[None]:
    def ours(name):
        return name.split('.')[0] in _TOP_LEVEL

    saved = {k: v for k, v in sys.modules.items() if ours(k)}
    for key in saved:
        del sys.modules[key]
    stubs = _stubs()
    sys.modules.update(stubs)
    sys.path.insert(0, ref)
    try:
        yield
    finally:
        sys.path.remove(ref)
        for key in [k for k in sys.modules if ours(k) or k in stubs]:
            del sys.modules[key]
        sys.modules.update(saved)


def model_creator(ref: str) -> types.ModuleType:
    """Their ``model_creator`` module (with ``models.vpt`` and ``params`` in its namespace)."""
    if ref not in _CACHE:
        with _reference_imports(ref):
            _CACHE[ref] = importlib.import_module('model_creator')
    return _CACHE[ref]


def authors_args(mc: types.ModuleType, yaml_path: str, num_classes: Optional[int] = None,
                 **overrides) -> argparse.Namespace:
    """Their arguments for one config, parsed by their own ``params.py``.

    Args:
        mc (module): :func:`model_creator`.
        yaml_path (str): The config.
        num_classes (int, optional): The dataset's classes; their ``train.py`` sets
            ``args.num_classes`` and clips ``proxy_prompt_len`` to it. Defaults to None, from
            :data:`NUM_CLASSES`.
        **overrides: Attributes set afterwards (``device='cpu'`` and ``quiet_mode=True`` are).
    """
    parser = argparse.ArgumentParser()
    for add in (mc.model_parameters, mc.prompt_parameters, mc.dataset_parameters,
                mc.training_parameters, mc.tuning_parameters, mc.criterion_parameters):
        parser = add(parser)
    args = parser.parse_args([])
    with contextlib.redirect_stdout(io.StringIO()):
        args = mc.update_args_from_file_colon(yaml_path, args)
    # train.py, after create_dataset: args.num_classes = num_classes, then
    # "if args.num_classes < args.proxy_prompt_len: args.proxy_prompt_len = args.num_classes".
    args.num_classes = NUM_CLASSES[args.dataset] if num_classes is None else num_classes
    if args.num_classes < args.proxy_prompt_len:
        args.proxy_prompt_len = args.num_classes
    args.device = 'cpu'
    args.quiet_mode = True
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def build_authors_model(mc: types.ModuleType, args: argparse.Namespace,
                        tiny: bool = False) -> nn.Module:
    """Their ``create_model(args, ...)`` for prompt tuning, on the CPU, without downloads.

    ``timm.create_model`` runs with ``pretrained=False`` and without timm's weight init; the
    initial class-to-prompt map (their pass over the training data) is a fixed round-robin
    map; their prompt attention mask (``mask``), allocated on CUDA there, is made on the CPU.
    ``tiny`` builds their ViT with depth 12, width 32 and 2 heads on 32x32 images instead of
    ViT-B: the parameter names and the per-layer prompt counts stay theirs.

    Args:
        mc (module): :func:`model_creator`.
        args (Namespace): :func:`authors_args`.
        tiny (bool): Build the small ViT. Defaults to False (their ViT-B).

    Returns:
        nn.Module: Their ``PromptVisionTransformer`` with their trainable parameters set.
    """
    tiny_kwargs = dict(img_size=32, patch_size=16, embed_dim=32, depth=12, num_heads=2,
                       mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))

    def create_model(name, pretrained=False, **kwargs):
        if tiny:
            from timm.models.vision_transformer import VisionTransformer
            return VisionTransformer(**tiny_kwargs)
        import timm
        return timm.create_model(name, pretrained=False, **kwargs)

    def create_vpt_vit(vit_size='B', **kwargs):
        if not tiny:
            return original_create_vpt_vit(vit_size=vit_size, **kwargs)
        return mc.PromptVisionTransformer(num_img_tokens=4, **tiny_kwargs, **kwargs)

    def generate_semantic_mapping(args, model, context):
        mapping = torch.arange(args.num_classes) % args.proxy_prompt_len
        return mapping, None, None, None

    def cpu_counters(self):
        self.num_batches = 0

    generate_mask = mc.VPTAttention._generate_mask

    def cpu_mask(self, L, S, length, device):
        return generate_mask(self, L, S, length, torch.device('cpu'))

    from timm.models.vision_transformer import VisionTransformer as TimmViT
    original_create_vpt_vit = mc.create_vpt_vit
    # timm's weight init (slow truncated normals) is skipped: no test here reads the values.
    with mock.patch.object(TimmViT, 'init_weights', lambda self, *args, **kwargs: None), \
            mock.patch.object(mc, 'timm', types.SimpleNamespace(create_model=create_model)), \
            mock.patch.object(mc, 'create_vpt_vit', create_vpt_vit), \
            mock.patch.object(mc, 'generate_semantic_mapping', generate_semantic_mapping), \
            mock.patch.object(mc.VPTCriterion, 'reset_num_batches', cpu_counters), \
            mock.patch.object(mc.VPTAttention, '_generate_mask', cpu_mask), \
            contextlib.redirect_stdout(io.StringIO()):
        return mc.create_model(args, args.num_classes, device=torch.device('cpu'))
