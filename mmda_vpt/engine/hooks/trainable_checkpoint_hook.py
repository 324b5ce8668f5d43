"""Checkpoints that keep only what DA-VPT trains, and loading them over a base model."""
from typing import Dict, Union

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from mmda_vpt.utils.model_access import unwrap_model

__all__ = ['TrainableCheckpointHook', 'trainable_state_dict', 'load_trainable_checkpoint']

TRAINABLE_ONLY_KEY = 'mmda_vpt_trainable_only'


def trainable_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The parameters of the unwrapped model that require gradients (prompts, biases, head)."""
    inner = unwrap_model(model)
    return {name: p.detach().cpu().clone() for name, p in inner.named_parameters()
            if p.requires_grad}


def load_trainable_checkpoint(model: nn.Module, checkpoint: Union[str, dict]) -> None:
    """Load a trainable-only checkpoint over a model that already holds the base weights.

    Every trainable parameter of the model must be in the checkpoint, and every key of the
    checkpoint must be a parameter of the model; otherwise a ``KeyError`` names the keys and
    the model is left unchanged.
    """
    source = checkpoint if isinstance(checkpoint, str) else 'the given dict'
    if isinstance(checkpoint, str):
        checkpoint = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state = checkpoint.get('state_dict', checkpoint)
    inner = unwrap_model(model)
    params = dict(inner.named_parameters())
    wanted = {n for n, p in params.items() if p.requires_grad}
    missing = sorted(wanted - set(state))
    unexpected = sorted(set(state) - set(params))
    if missing or unexpected:
        raise KeyError(f'trainable checkpoint {source} does not fit {type(inner).__name__}: '
                       f'missing keys: {missing or "none"}; unexpected keys: '
                       f'{unexpected or "none"}')
    for name, value in state.items():
        if params[name].shape != value.shape:
            raise ValueError(f'trainable checkpoint {source}: {name} has shape '
                             f'{tuple(value.shape)}, the model {tuple(params[name].shape)}')
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


@HOOKS.register_module()
class TrainableCheckpointHook(Hook):
    """Make the runner's checkpoints keep only the trainable parameters.

    For ViT-B with 10 prompts per layer the model part of such a file is well under 2 MB
    besides the head. Resuming works as usual when the config still loads the base pre-trained
    weights (``init_cfg``): the runner loads checkpoints non-strictly. To use one for testing
    or inference, load it with :func:`load_trainable_checkpoint` over the base model.

    Args:
        drop_optimizer (bool): Also drop the optimizer state (which holds moments only for the
            trainable parameters anyway). Defaults to False.
    """

    priority = 'VERY_LOW'

    def __init__(self, drop_optimizer: bool = False) -> None:
        self.drop_optimizer = drop_optimizer

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        trainable = trainable_state_dict(runner.model)
        before = len(checkpoint['state_dict'])
        checkpoint['state_dict'] = {k: v for k, v in checkpoint['state_dict'].items()
                                    if k in trainable}
        checkpoint.setdefault('meta', {})[TRAINABLE_ONLY_KEY] = True
        if self.drop_optimizer:
            checkpoint.pop('optimizer', None)
        print_log(f'TrainableCheckpointHook: saving {len(checkpoint["state_dict"])} of '
                  f'{before} tensors', logger='current')
