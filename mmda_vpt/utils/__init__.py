"""Helpers every part of mmda_vpt uses: reaching the DA-VPT backbone and the loss of a model."""
from .model_access import (add_loss_callback, get_davpt_backbone, remove_loss_callback,
                           unwrap_model)

__all__ = ['add_loss_callback', 'get_davpt_backbone', 'remove_loss_callback', 'unwrap_model']
