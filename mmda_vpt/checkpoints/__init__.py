"""Checkpoints: trainable state, frozen base weights, ViT converters and errors naming the fix.

The trainable state (:mod:`.trainable_state`), the pointer to the frozen base weights
(:mod:`.base_weights`) and their strict loading (:mod:`.frozen_weights`), converters of released
ViT weights (:mod:`.vit_checkpoint`) and errors that name what a checkpoint lacks
(:mod:`.checkpoint_errors`).
"""
from .base_weights import install_checkpoint_loader
from .frozen_weights import FrozenWeights
from .trainable_state import (check_trainable_fit, count_params, log_trainable_params,
                              trainable_state_dict)
from .vit_checkpoint import convert_vit_checkpoint, convert_vit_weights

__all__ = [
    'FrozenWeights', 'check_trainable_fit', 'convert_vit_checkpoint', 'convert_vit_weights',
    'count_params', 'install_checkpoint_loader', 'log_trainable_params', 'trainable_state_dict'
]
