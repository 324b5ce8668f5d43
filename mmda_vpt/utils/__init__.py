from ._moved import moved_getattr
from .class_prompt_map import ClassPromptMap
from .compat import apply_compat_patches
from .labels import image_labels, patch_labels
from .model_access import (add_loss_callback, get_davpt_backbone, remove_loss_callback,
                           unwrap_model)
from .params import count_params, log_trainable_params, trainable_state_dict
from .vit_checkpoint import convert_vit_checkpoint, convert_vit_weights

__all__ = [
    'ClassPromptMap', 'apply_compat_patches', 'image_labels', 'patch_labels',
    'add_loss_callback', 'get_davpt_backbone', 'remove_loss_callback', 'unwrap_model',
    'count_params', 'log_trainable_params', 'trainable_state_dict', 'convert_vit_checkpoint',
    'convert_vit_weights'
]

__getattr__ = moved_getattr(__name__)  # count_host_reads: see _moved.MOVED
