"""Checkpoints: the trainable state, the frozen base weights (their pointer, their strict loading),
converters of released ViT weights, and errors that name what a checkpoint lacks."""
from .base_weights import install_checkpoint_loader
from .frozen_weights import FrozenWeights
from .trainable_state import (check_trainable_fit, count_params, log_trainable_params,
                              trainable_state_dict)
from .vit_checkpoint import convert_vit_checkpoint, convert_vit_weights

__all__ = [
    'FrozenWeights', 'check_trainable_fit', 'convert_vit_checkpoint', 'convert_vit_weights',
    'count_params', 'install_checkpoint_loader', 'log_trainable_params', 'trainable_state_dict'
]
