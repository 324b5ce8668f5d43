"""Checkpoints that keep only what DA-VPT trains, and loading them over a base model."""
import logging
from typing import Optional, Set, Union

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from mmda_vpt.checkpoints.base_weights import is_base_weights_key
from mmda_vpt.utils.model_access import PromptedBackbone, unwrap_model
from mmda_vpt.checkpoints.trainable_state import check_trainable_fit, trainable_state_dict

__all__ = [
    'TrainableCheckpointHook', 'trainable_state_dict', 'frozen_backbone_keys',
    'load_trainable_checkpoint'
]

TRAINABLE_ONLY_KEY = 'mmda_vpt_trainable_only'


def frozen_backbone_keys(model: nn.Module) -> Optional[Set[str]]:
    """State-dict keys of the frozen pre-trained weights of a model's DAVPT backbone.

    These are what a trainable-only checkpoint leaves out (the base checkpoint holds them);
    everything else (prompts, tuned biases, heads with their buffers such as BatchNorm running
    statistics) is kept. None when the model has no DAVPT backbone.
    """
    inner = unwrap_model(model)
    backbone = getattr(inner, 'backbone', None)
    if not isinstance(backbone, PromptedBackbone):
        return None
    trainable = set(backbone.trainable_names())
    return {f'backbone.{k}' for k in backbone.state_dict()
            if k not in trainable and not is_base_weights_key(k)}


def load_trainable_checkpoint(model: nn.Module, checkpoint: Union[str, dict]) -> None:
    """Load a trainable-only checkpoint over a model that already holds the base weights.

    Every trainable parameter of the model must be in the checkpoint, and every key of the
    checkpoint must be in the model's state dict with the model's shape (a base-weights entry
    is ignored here); otherwise a ``ValueError`` names the keys and shapes and the model is left
    unchanged. The stock
    loaders (``load_checkpoint(model, path)``, the runner, the inferencers) need no base model:
    the backbone loads the base weights the checkpoint names.
    """
    source = checkpoint if isinstance(checkpoint, str) else 'the given dict'
    if isinstance(checkpoint, str):
        checkpoint = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state = checkpoint.get('state_dict', checkpoint)
    state = {k: v for k, v in state.items() if not is_base_weights_key(k)}
    inner = unwrap_model(model)
    params = {k: v for k, v in inner.state_dict(keep_vars=True).items()
              if not is_base_weights_key(k)}
    wanted = {n for n, p in inner.named_parameters() if p.requires_grad}
    check_trainable_fit(state, params, wanted, f'{type(inner).__name__} ({source})')
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


@HOOKS.register_module()
class TrainableCheckpointHook(Hook):
    """Make the runner's checkpoints keep only what training changes.

    Left out are the frozen pre-trained weights of the DAVPT backbone; kept are its trained
    parameters and everything outside it (the heads, with their buffers such as BatchNorm
    running statistics). For a model without a DAVPT backbone, the parameters that require
    gradients are kept.

    For ViT-B with 10 prompts per layer the model part of such a file is well under 2 MB
    besides the head. The backbone's ``_base_weights`` entry is kept: it names the pre-trained
    checkpoint of ``init_cfg`` and the fingerprint (content hash) of the frozen weights left
    out, and every stock loader (``load_from``, ``--resume``, ``tools/test.py``, the
    inferencers, ``load_checkpoint``) then loads the first file found whose weights have that
    fingerprint under the trained part (see :mod:`mmda_vpt.checkpoints.base_weights`). A backbone
    built without ``init_cfg`` ``type='Pretrained'`` names none: a warning says so once, and its
    checkpoints load only over a model that holds the same base weights already.

    Args:
        drop_optimizer (bool): Also drop the optimizer state (which holds moments only for the
            trainable parameters anyway). Defaults to False.
    """

    priority = 'VERY_LOW'

    def __init__(self, drop_optimizer: bool = False) -> None:
        self.drop_optimizer = drop_optimizer
        self._warned = False

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint['state_dict']
        before = len(state)
        frozen = frozen_backbone_keys(runner.model)
        if frozen is None:
            trainable = set(trainable_state_dict(runner.model))
            state = {k: v for k, v in state.items() if k in trainable or is_base_weights_key(k)}
        else:
            state = {k: v for k, v in state.items() if k not in frozen}
        checkpoint['state_dict'] = state
        if not any(is_base_weights_key(k) for k in checkpoint['state_dict']) and not self._warned:
            print_log('TrainableCheckpointHook: the backbone names no base-weights file '
                      "(init_cfg type='Pretrained'), so these checkpoints load only over a "
                      'model that holds the same frozen weights already', logger='current',
                      level=logging.WARNING)
            self._warned = True
        checkpoint.setdefault('meta', {})[TRAINABLE_ONLY_KEY] = True
        if self.drop_optimizer:
            checkpoint.pop('optimizer', None)
        print_log(f'TrainableCheckpointHook: saving {len(checkpoint["state_dict"])} of '
                  f'{before} tensors', logger='current')
