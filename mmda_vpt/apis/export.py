"""Export one self-contained checkpoint: base and trained weights, no optimizer state.

A checkpoint of ``TrainableCheckpointHook`` holds only the trained parameters and names the
base pre-trained checkpoint; a full one also holds the optimizer and runtime state. The exported
file holds every weight of the model and the checkpoint's ``meta`` (``dataset_meta``: the class
names the inferencers show), so a model built from the config loads it strictly with no
``init_cfg`` and no other file (no ``_base_weights`` entry: the export names no base file).
Before writing, :func:`export_checkpoint` checks both on random images of the model's channels
and size, passed through its data preprocessor: the exported weights, loaded strictly into a
model built without ``init_cfg``, predict exactly what the model loaded from the checkpoint
predicts.
"""
import copy
import os
import os.path as osp
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from mmda_vpt.checkpoints.base_weights import strip_base_weights
from mmda_vpt.engine.hooks.trainable_checkpoint_hook import TRAINABLE_ONLY_KEY
from .model import build_model, load_checkpoint_strictly

__all__ = ['check_inputs', 'export_checkpoint']


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
    model = build_model(cfg)
    loaded = load_checkpoint_strictly(model, checkpoint)
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
