"""How hooks and tools reach a model: its DA-VPT backbone, its classes, its loss, its class map.

The interface between the parts of mmda_vpt that meet at a model (mmpretrain's ``swav_hook``
sets state on the model the same way): hooks never look each other up. What they share lives on
the unwrapped model:

* :func:`get_davpt_backbone` -- the backbone, checked against :class:`PromptedBackbone`;
* :func:`model_num_classes`, :func:`model_ignore_index` -- what the stock head says;
* :func:`add_loss_callback` / :func:`remove_loss_callback` -- extra terms of ``model.loss``;
* :func:`set_class_prompt_map` / :func:`get_class_prompt_map` -- the class-to-prompt map that a
  ``ClassPromptMappingHook`` keeps and a ``PromptMetricLossHook`` reads.
"""
from typing import Callable, ContextManager, Dict, Optional, Protocol, Sequence, runtime_checkable

import torch.nn as nn
from mmengine.model import BaseTTAModel
from mmpretrain.utils import get_ori_model

__all__ = [
    'PromptedBackbone', 'unwrap_model', 'get_davpt_backbone', 'model_num_classes',
    'model_ignore_index', 'add_loss_callback', 'remove_loss_callback', 'set_class_prompt_map',
    'get_class_prompt_map'
]

#: ``fn(model, inputs, data_samples, losses)``; may add entries to ``losses`` in place.
LossCallback = Callable[[nn.Module, object, list, Dict], None]

# Keys in the unwrapped model's ``__dict__`` (plain attributes, never in its state dict).
_LOSS_CALLBACKS = '_mmda_vpt_loss_callbacks'
_ORIGINAL_LOSS = '_mmda_vpt_original_loss'
_CLASS_PROMPT_MAP = '_mmda_vpt_class_prompt_map'


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


def model_num_classes(model: nn.Module) -> int:
    """Number of classes of a stock classifier (``head``) or segmentor (``decode_head``).

    Args:
        model (nn.Module): The model, wrapped or not.

    Returns:
        int: ``head.num_classes`` or ``decode_head.num_classes``.

    Raises:
        ValueError: If the model has neither.
    """
    inner = unwrap_model(model)
    for name in ('head', 'decode_head'):
        head = getattr(inner, name, None)
        if head is not None and getattr(head, 'num_classes', None):
            return int(head.num_classes)
    raise ValueError(f'cannot tell the number of classes of {type(inner).__name__}: it has no '
                     'head.num_classes or decode_head.num_classes')


def model_ignore_index(model: nn.Module, default: int = 255) -> int:
    """The segmentor's ignore index (``decode_head.ignore_index``), else ``default``.

    Args:
        model (nn.Module): The model, wrapped or not.
        default (int): For a model without one (a classifier). Defaults to 255.

    Returns:
        int: The label value that marks unlabelled pixels.
    """
    head = getattr(unwrap_model(model), 'decode_head', None)
    return int(getattr(head, 'ignore_index', default))


def set_class_prompt_map(model: nn.Module, class_map: Optional[object]) -> None:
    """Keep ``class_map`` as the class-to-prompt map of ``model`` (None forgets it).

    ``ClassPromptMappingHook`` calls it when it starts accumulating features and when it stops.

    Args:
        model (nn.Module): The model, wrapped or not.
        class_map (ClassPromptMap, optional): The map; it has ``class_to_prompt``, a (C,) CPU
            LongTensor (None before the first clustering), replaced at every update.
    """
    inner = unwrap_model(model)
    if class_map is None:
        inner.__dict__.pop(_CLASS_PROMPT_MAP, None)
    else:
        inner.__dict__[_CLASS_PROMPT_MAP] = class_map


def get_class_prompt_map(model: nn.Module) -> Optional[object]:
    """The class-to-prompt map kept for ``model`` by :func:`set_class_prompt_map`, or None.

    Args:
        model (nn.Module): The model, wrapped or not.

    Returns:
        ClassPromptMap | None: The map of the ``ClassPromptMappingHook`` that trains with the
        model, or None without one.
    """
    return unwrap_model(model).__dict__.get(_CLASS_PROMPT_MAP)


def add_loss_callback(model: nn.Module, name: str, fn: LossCallback) -> None:
    """Call ``fn`` after every ``model.loss(inputs, data_samples)`` of the unwrapped model.

    The model's ``loss`` is wrapped once per model instance; callbacks run in the order they
    were added and see the loss dict before it is parsed, so entries they add are logged and
    back-propagated by the stock ``train_step``.
    """
    inner = unwrap_model(model)
    callbacks = inner.__dict__.get(_LOSS_CALLBACKS)
    if callbacks is None:
        callbacks = {}
        original = inner.loss

        def loss_with_callbacks(inputs, data_samples, *args, **kwargs):
            losses = original(inputs, data_samples, *args, **kwargs)
            for callback in list(callbacks.values()):
                callback(inner, inputs, data_samples, losses)
            return losses

        inner.__dict__[_LOSS_CALLBACKS] = callbacks
        inner.__dict__[_ORIGINAL_LOSS] = original
        inner.loss = loss_with_callbacks
    callbacks[name] = fn


def remove_loss_callback(model: nn.Module, name: str) -> None:
    """Undo :func:`add_loss_callback`; restores the original ``loss`` once none remain."""
    inner = unwrap_model(model)
    callbacks = inner.__dict__.get(_LOSS_CALLBACKS)
    if not callbacks:
        return
    callbacks.pop(name, None)
    if not callbacks:
        del inner.__dict__[_ORIGINAL_LOSS]
        del inner.__dict__[_LOSS_CALLBACKS]
        del inner.__dict__['loss']  # the class's own ``loss`` shows through again
