"""Export one self-contained checkpoint: base and trained weights, no optimizer state.

A checkpoint of ``TrainableCheckpointHook`` holds only the trained parameters and names the
base pre-trained checkpoint; a full one also holds the optimizer and runtime state. The exported
file holds every weight of the model and the checkpoint's ``meta`` (``dataset_meta``: the class
names the inferencers show), so a model built from CONFIG loads it strictly with no
``init_cfg`` and no other file (no ``_base_weights`` entry: the export names no base file).
Before writing, the tool checks both on random images of the model's channels and size, passed
through its data preprocessor: the exported weights, loaded strictly into a model built without
``init_cfg``, predict exactly what the model loaded from CHECKPOINT predicts.

Examples::

    python tools/export_checkpoint.py CONFIG work_dirs/xxx/epoch_100.pth exported.pth
    python tools/export_checkpoint.py SEG_CONFIG work_dirs/xxx/iter_80000.pth exported.pth
"""
import argparse
import copy
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from mmda_vpt.apis import library_of, register_library  # noqa: E402

from mmda_vpt.engine.hooks.trainable_checkpoint_hook import TRAINABLE_ONLY_KEY  # noqa: E402
from mmda_vpt.checkpoints.base_weights import is_base_weights_key, strip_base_weights  # noqa: E402

__all__ = [
    'build_model', 'check_inputs', 'export_checkpoint', 'main', 'parse_args', 'without_init_cfg'
]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line of export_checkpoint.py.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Export a self-contained checkpoint (base + trained weights, no optimizer)')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='a full or trainable-only checkpoint')
    parser.add_argument('out', help='the file to write')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, as key=value pairs merged into it')
    return parser.parse_args(argv)


def without_init_cfg(cfg: Any) -> Any:
    """A copy of a model config with every ``init_cfg`` and ``pretrained`` set to None."""
    if isinstance(cfg, dict):
        out = type(cfg)()
        for key, value in cfg.items():
            out[key] = None if key in ('init_cfg', 'pretrained') else without_init_cfg(value)
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(without_init_cfg(v) for v in cfg)
    return cfg


def build_model(cfg: Config, init_cfg: bool = True) -> nn.Module:
    """The model of ``cfg`` on the CPU, in eval mode, with its library's registry.

    Args:
        cfg (Config): A loaded config.
        init_cfg (bool): Keep the ``init_cfg`` entries (nothing is loaded until
            ``init_weights``). Defaults to True.

    Returns:
        nn.Module: The model, weights as initialized at construction.
    """
    library = library_of(cfg)
    register_library(cfg)
    from importlib import import_module
    models = import_module(f'{library}.registry').MODELS
    model_cfg = copy.deepcopy(cfg.model) if init_cfg else without_init_cfg(cfg.model)
    if library == 'mmseg':
        model_cfg.train_cfg = None
    with DefaultScope.overwrite_default_scope(library):
        model = models.build(model_cfg)
    return revert_sync_batchnorm(model).eval()


def _input_size(backbone: nn.Module) -> Tuple[int, int]:
    """(H, W) the backbone was built for: mmpretrain's ``patch_embed.init_input_size``, mmseg's
    ``img_size``; 224 x 224 when it names none."""
    size = getattr(getattr(backbone, 'patch_embed', None), 'init_input_size', None)
    if size is None:
        size = getattr(backbone, 'img_size', None)
    if size is None:
        return 224, 224
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _input_channels(model: nn.Module) -> int:
    """The channels of the images the model takes: its backbone's first convolution's input,
    else its data preprocessor's mean, else 3."""
    for module in model.backbone.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    mean = getattr(model.data_preprocessor, 'mean', None)
    if isinstance(mean, torch.Tensor) and mean.dim() == 3:
        return mean.shape[0]
    return 3


def check_inputs(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random batch for the check forward, as the model's data preprocessor hands it on.

    Images of the backbone's channels and size with values in [0, 255], through
    ``model.data_preprocessor`` (normalization, channel order, padding) in test mode.

    Args:
        model (nn.Module): An mmpretrain classifier or an mmseg segmentor.
        batch (int): Number of images. Defaults to 2.
        seed (int): Seed of the random images. Defaults to 0.

    Returns:
        Tensor: (batch, C, H, W) inputs for ``model(inputs, mode='tensor')``.
    """
    generator = torch.Generator().manual_seed(seed)
    channels, (height, width) = _input_channels(model), _input_size(model.backbone)
    images = [torch.randint(0, 256, (channels, height, width), generator=generator,
                            dtype=torch.uint8) for _ in range(batch)]
    return model.data_preprocessor(dict(inputs=images), False)['inputs']


@torch.no_grad()
def _predict(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return model(inputs, mode='tensor')


def export_checkpoint(config: str, checkpoint: str, out: str,
                      cfg_options: Optional[dict] = None) -> Dict[str, Any]:
    """Write the self-contained checkpoint of ``checkpoint`` to ``out``.

    Args:
        config (str): The config file.
        checkpoint (str): A full or trainable-only checkpoint of that config.
        out (str): The file to write.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.

    Returns:
        dict: What was written: ``tensors`` (number of entries), ``bytes`` and ``source``.

    Raises:
        RuntimeError: If the exported weights do not predict what the loaded model predicts.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    loaded = _load_checkpoint(checkpoint, map_location='cpu')
    state = loaded.get('state_dict', loaded)
    model = build_model(cfg)
    if not any(is_base_weights_key(k) for k in state) and \
            {k for k in model.state_dict() if not is_base_weights_key(k)} - set(state):
        # A trainable-only checkpoint written before the checkpoints named their base
        # weights: those of the config's init_cfg.
        model.init_weights()
    _load_checkpoint_to_model(model, loaded, strict=True)
    model.eval()
    weights = strip_base_weights({k: v.detach().cpu().clone()
                                  for k, v in model.state_dict().items()})
    meta = {k: v for k, v in (loaded.get('meta') or {}).items() if k != TRAINABLE_ONLY_KEY}
    meta['mmda_vpt_exported_from'] = osp.abspath(checkpoint)
    exported = dict(meta=meta, state_dict=weights)

    fresh = build_model(cfg, init_cfg=False)
    _load_checkpoint_to_model(fresh, copy.deepcopy(exported), strict=True)
    inputs = check_inputs(model)
    if not torch.equal(_predict(model, inputs), _predict(fresh, inputs)):
        raise RuntimeError(f'the weights exported from {checkpoint} do not predict what the '
                           'checkpoint predicts; nothing was written')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(exported, out)
    size = osp.getsize(out)
    print_log(f'exported {len(weights)} tensors ({size / 2**20:.1f} MiB) of {checkpoint} to '
              f'{out}: it loads strictly without init_cfg and predicts what the checkpoint '
              'predicts', logger='current')
    return dict(tensors=len(weights), bytes=size, source=checkpoint)


def main(argv: Optional[List[str]] = None) -> None:
    """Exports the checkpoint named on the command line.

    Args:
        argv (list[str], optional): Arguments; the process's when None. Defaults to None.
    """
    args = parse_args(argv)
    export_checkpoint(args.config, args.checkpoint, args.out, args.cfg_options)


if __name__ == '__main__':
    main()
