"""Trainable-parameter accounting (the paper's #Param column)."""
from typing import Tuple

import torch.nn as nn
from mmengine.logging import print_log

from .model_access import unwrap_model

__all__ = ['count_params', 'log_trainable_params']


def count_params(model: nn.Module) -> Tuple[int, int]:
    """(trainable, total) parameter counts of the unwrapped model."""
    params = list(unwrap_model(model).parameters())
    return (sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


def log_trainable_params(model: nn.Module) -> None:
    """Log the trainable parameter count and its share of the whole model, once per model."""
    inner = unwrap_model(model)
    if inner.__dict__.get('_mmda_vpt_params_logged'):
        return
    inner.__dict__['_mmda_vpt_params_logged'] = True
    trainable, total = count_params(inner)
    print_log(f'Trainable parameters: {trainable:,} of {total:,} '
              f'({100.0 * trainable / max(total, 1):.2f}%, {trainable / 1e6:.3f}M)',
              logger='current')
