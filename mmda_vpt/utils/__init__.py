"""Helpers every part of mmda_vpt uses: how hooks and tools reach a model and each other."""
from .model_access import (PromptedBackbone, add_loss_callback, get_class_prompt_map,
                           get_davpt_backbone, model_ignore_index, model_num_classes,
                           remove_loss_callback, set_class_prompt_map, unwrap_model)

__all__ = [
    'PromptedBackbone', 'add_loss_callback', 'get_class_prompt_map', 'get_davpt_backbone',
    'model_ignore_index', 'model_num_classes', 'remove_loss_callback', 'set_class_prompt_map',
    'unwrap_model'
]
