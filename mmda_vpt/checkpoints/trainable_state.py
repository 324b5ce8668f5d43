"""Trainable-parameter accounting (the paper's #Param column), counted and logged in one place."""
from typing import Dict, Iterable, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmda_vpt.utils.model_access import unwrap_model

__all__ = ['check_trainable_fit', 'count_params', 'log_trainable_params', 'trainable_state_dict']

_LOGGED_KEY = '_mmda_vpt_params_logged'


def count_params(model: nn.Module) -> Tuple[int, int]:
    """Count the parameters of the unwrapped model.

    Args:
        model (nn.Module): A model (wrapped or not) or any module, such as a backbone.

    Returns:
        tuple[int, int]: The trainable (``requires_grad``) and the total parameter counts.
    """
    params = list(unwrap_model(model).parameters())
    return (sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


def trainable_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """CPU copies of the parameters that require gradients, of the unwrapped model.

    Args:
        model (nn.Module): A model (wrapped or not) or any module, such as a backbone.

    Returns:
        dict[str, Tensor]: Name -> detached CPU copy (prompts, tuned biases, head...).
    """
    return {name: p.detach().cpu().clone() for name, p in unwrap_model(model).named_parameters()
            if p.requires_grad}


def check_trainable_fit(given: Dict[str, torch.Tensor], own: Dict[str, torch.Tensor],
                        trainable: Iterable[str], owner: str, prefix: str = '') -> None:
    """Raise one line naming where the trained tensors of a checkpoint do not fit a model.

    Args:
        given (dict[str, Tensor]): The checkpoint's trained tensors, by the model's names.
        own (dict[str, Tensor]): The model's state dict.
        trainable (Iterable[str]): The names the checkpoint must hold (the trained ones).
        owner (str): The model's name in the message.
        prefix (str): Prefix of the names in the message. Defaults to ''.

    Raises:
        ValueError: Naming the shape mismatches, the missing and the unexpected keys.
    """
    missing = sorted(prefix + k for k in trainable if k not in given)
    unexpected = sorted(prefix + k for k in given if k not in own)
    shapes = [f'{prefix}{k} {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in '
              'the model' for k, v in sorted(given.items())
              if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise ValueError(
            f'trainable-only checkpoint does not fit {owner} (another architecture or prompt '
            f'count?): shape mismatches: {"; ".join(shapes) or "none"}; missing keys: '
            f'{missing or "none"}; unexpected keys: {unexpected or "none"}')


def log_trainable_params(model: nn.Module, details: Optional[str] = None,
                         once: bool = True) -> None:
    """Log the trainable parameter count of the unwrapped model and its share of the whole.

    Args:
        model (nn.Module): A model (wrapped or not) or any module, such as a backbone.
        details (str, optional): Appended to the line after a semicolon. Defaults to None.
        once (bool): Log once per model instance; later calls do nothing. Defaults to True.
    """
    inner = unwrap_model(model)
    if once:
        if inner.__dict__.get(_LOGGED_KEY):
            return
        inner.__dict__[_LOGGED_KEY] = True
    trainable, total = count_params(inner)
    print_log(f'{type(inner).__name__}: {trainable:,} trainable of {total:,} parameters '
              f'({100.0 * trainable / max(total, 1):.3f}%, {trainable / 1e6:.3f}M)'
              + (f'; {details}' if details else ''),
              logger='current')
