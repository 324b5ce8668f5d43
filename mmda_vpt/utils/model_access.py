"""Reach the DA-VPT backbone of whatever model a runner trains, and hook into its loss."""
from typing import Callable, ContextManager, Dict, Optional, Protocol, Sequence, runtime_checkable

import torch.nn as nn
from mmengine.model import BaseTTAModel
from mmpretrain.utils import get_ori_model

__all__ = [
    'PromptedBackbone', 'unwrap_model', 'get_davpt_backbone', 'add_loss_callback',
    'remove_loss_callback'
]

#: ``fn(model, inputs, data_samples, losses)``; may add entries to ``losses`` in place.
LossCallback = Callable[[nn.Module, object, list, Dict], None]


@runtime_checkable
class PromptedBackbone(Protocol):
    """What hooks and tools use of a DA-VPT backbone (``DAVPTViT``, ``DAVPTViTSeg``).

    :class:`~mmda_vpt.models.backbones.PromptedViTMixin` implements it; this interface lets
    everything that reaches the backbone through a model (:func:`get_davpt_backbone`) do so
    without importing the models.

    Attributes:
        guided_layers (tuple[int]): The layers whose prompts the metric losses guide.
        num_prompts (int): Prompts per layer, as configured.
        embed_dims_ (int): The token width.
        taps: The :class:`~mmda_vpt.models.backbones.PromptTaps` of the last recorded forward,
            or None.
        prompts: The :class:`~mmda_vpt.models.backbones.DeepPrompts` (one parameter per layer).
    """

    guided_layers: Sequence[int]
    num_prompts: int
    embed_dims_: int
    taps: Optional[object]
    prompts: nn.Module

    @property
    def prompt_counts(self) -> Sequence[int]:
        """Prompts of each layer now (all 0 inside :meth:`prompts_disabled`)."""

    def prompts_disabled(self) -> ContextManager[None]:
        """Run as the plain pre-trained ViT, recording the taps in any mode."""

    def record_attention(self, layers: Optional[Sequence[int]] = None) -> ContextManager[dict]:
        """Record attention maps of the prefix tokens and prompts."""

    def trainable_names(self) -> list:
        """Names of the parameters that DA-VPT trains."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a model wrapper and a test-time-augmentation model, or the model itself.

    mmpretrain's ``get_ori_model`` (the wrappers are those of mmengine's ``MODEL_WRAPPERS``:
    ``is_model_wrapper``), then the ``module`` of an mmengine ``BaseTTAModel`` (such as
    ``SegTTAModel``, which ``tools/test.py --tta`` builds around the model), itself maybe
    wrapped.

    Args:
        model (nn.Module): A model, wrapped or not.

    Returns:
        nn.Module: The classifier or segmentor that holds the backbone.
    """
    model = get_ori_model(model)
    if isinstance(model, BaseTTAModel):
        model = get_ori_model(model.module)
    return model


def get_davpt_backbone(model: nn.Module, who: str = 'this hook') -> PromptedBackbone:
    """The DA-VPT backbone of a classifier or segmentor, or a clear error.

    Args:
        model (nn.Module): The model, wrapped or not.
        who (str): Who asks, for the error. Defaults to 'this hook'.

    Returns:
        PromptedBackbone: ``model.backbone`` of the unwrapped model.

    Raises:
        TypeError: If the backbone is not a DA-VPT backbone (:class:`PromptedBackbone`).
    """
    inner = unwrap_model(model)
    backbone = getattr(inner, 'backbone', None)
    if not isinstance(backbone, PromptedBackbone):
        found = type(backbone).__name__ if backbone is not None else 'no backbone'
        raise TypeError(
            f'{who} needs a model whose backbone is DAVPTViT, but {type(inner).__name__} has '
            f'{found}; set model.backbone.type="DAVPTViT" or remove the hook from custom_hooks')
    return backbone


def add_loss_callback(model: nn.Module, name: str, fn: LossCallback) -> None:
    """Call ``fn`` after every ``model.loss(inputs, data_samples)`` of the unwrapped model.

    The model's ``loss`` is wrapped once per model instance; callbacks run in the order they
    were added and see the loss dict before it is parsed, so entries they add are logged and
    back-propagated by the stock ``train_step``.
    """
    inner = unwrap_model(model)
    callbacks = inner.__dict__.get('_mmda_vpt_loss_callbacks')
    if callbacks is None:
        callbacks = {}
        original = inner.loss

        def loss_with_callbacks(inputs, data_samples, *args, **kwargs):
            losses = original(inputs, data_samples, *args, **kwargs)
            for callback in list(callbacks.values()):
                callback(inner, inputs, data_samples, losses)
            return losses

        inner.__dict__['_mmda_vpt_loss_callbacks'] = callbacks
        inner.__dict__['_mmda_vpt_original_loss'] = original
        inner.loss = loss_with_callbacks
    callbacks[name] = fn


def remove_loss_callback(model: nn.Module, name: str) -> None:
    """Undo :func:`add_loss_callback`; restores the original ``loss`` once none remain."""
    inner = unwrap_model(model)
    callbacks = inner.__dict__.get('_mmda_vpt_loss_callbacks')
    if not callbacks:
        return
    callbacks.pop(name, None)
    if not callbacks:
        del inner.__dict__['_mmda_vpt_original_loss']
        del inner.__dict__['_mmda_vpt_loss_callbacks']
        del inner.__dict__['loss']  # the class's own ``loss`` shows through again
