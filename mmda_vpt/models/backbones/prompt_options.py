"""The DA-VPT prompt options, stated and checked once for every backbone.

Both ``DAVPTViT`` backbones take these options as keyword arguments next to their host's own
(``model.backbone.num_prompts=...`` in a config) and hand them over with
:meth:`PromptOptions.pop_from`; :class:`~.prompted_vit_mixin.PromptedViTMixin` applies them.
"""
from dataclasses import dataclass, fields
from typing import Any, Dict, Optional, Sequence, Tuple, Union

__all__ = ['PromptOptions', 'PROMPT_INITS', 'BIAS_TUNE_MODES']

PROMPT_INITS = ('uniform', 'xavier')
BIAS_TUNE_MODES = (None, 'kv', 'all')


def _is_count(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


@dataclass
class PromptOptions:
    """How a frozen ViT is prompted and what of it trains.

    Args:
        num_prompts (int): Prompts per layer; 0 gives a plain (frozen) ViT. Defaults to 10.
        guided_layers (int | Sequence[int]): 0-based layers that receive metric guidance;
            negative indices count from the end. Defaults to ``(-1,)``.
        num_guided_prompts (int, optional): Prompts in the guided layers (the paper's M).
            Defaults to None, meaning ``num_prompts``.
        prompt_dropout (float): Dropout on the prompts. Defaults to 0.0.
        prompt_init (str): ``'uniform'`` (VPT's U(-v, v), v = sqrt(6 / (3 * patch_h * patch_w +
            dim))) or ``'xavier'``. Defaults to ``'uniform'``.
        bias_tune (str, optional): DA-VPT+: ``'kv'`` tunes the K and V biases of attention (the
            paper), ``'all'`` also the biases of the attention output projection, the second MLP
            layer and the LayerNorms (the authors' code). Defaults to None.
        learnable_cls_token (bool): Whether the CLS token trains. Defaults to False.
        with_cp (bool): Activation checkpointing of the blocks in training. Defaults to False.
        frozen_drop_path_rate (float): Drop-path (stochastic depth) on the residual branches of
            the frozen blocks in training, rising linearly over the depth from 0 to this rate
            (the authors run their frozen backbone so); the weights stay frozen. The host's own
            ``drop_path_rate`` stays inert (VPT keeps the frozen encoder in eval mode).
            Defaults to 0.0 (off).

    Raises:
        ValueError: When an option is out of its range; :meth:`resolve_guided_layers` checks
            the guided layers against the depth.
    """
    num_prompts: int = 10
    guided_layers: Union[int, Sequence[int]] = (-1, )
    num_guided_prompts: Optional[int] = None
    prompt_dropout: float = 0.0
    prompt_init: str = 'uniform'
    bias_tune: Optional[str] = None
    learnable_cls_token: bool = False
    with_cp: bool = False
    frozen_drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        if not _is_count(self.num_prompts):
            raise ValueError(f'num_prompts must be a non-negative int, got {self.num_prompts!r}')
        if self.num_guided_prompts is None:
            self.num_guided_prompts = self.num_prompts
        if not _is_count(self.num_guided_prompts):
            raise ValueError('num_guided_prompts must be a non-negative int, '
                             f'got {self.num_guided_prompts!r}')
        if self.prompt_init not in PROMPT_INITS:
            raise ValueError(
                f'prompt_init must be one of {PROMPT_INITS}, got {self.prompt_init!r}')
        if self.bias_tune not in BIAS_TUNE_MODES:
            raise ValueError(
                f'bias_tune must be one of {BIAS_TUNE_MODES}, got {self.bias_tune!r}')
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ValueError(f'prompt_dropout must be in [0, 1), got {self.prompt_dropout}')
        if not 0.0 <= self.frozen_drop_path_rate < 1.0:
            raise ValueError('frozen_drop_path_rate must be in [0, 1), got '
                             f'{self.frozen_drop_path_rate}')
        if isinstance(self.guided_layers, int):
            self.guided_layers = (self.guided_layers, )

    @classmethod
    def pop_from(cls, kwargs: Dict[str, Any]) -> 'PromptOptions':
        """Take the prompt options out of a backbone's keyword arguments.

        Args:
            kwargs (dict): The backbone's keyword arguments; the prompt options are removed
                from it, the host's own arguments stay.

        Returns:
            PromptOptions: The checked options (defaults where not given).
        """
        return cls(**{f.name: kwargs.pop(f.name) for f in fields(cls) if f.name in kwargs})

    def resolve_guided_layers(self, num_layers: int) -> Tuple[int, ...]:
        """The guided layers as sorted 0-based indices into a ViT of ``num_layers`` blocks.

        Args:
            num_layers (int): The depth of the host ViT.

        Returns:
            tuple[int]: The guided layers, sorted.

        Raises:
            ValueError: When a layer is outside the depth or named twice, or when guided layers
                have no prompts.
        """
        resolved = []
        for layer in self.guided_layers:
            if not -num_layers <= layer < num_layers:
                raise ValueError(
                    f'guided layer {layer} is outside the depth of this ViT ({num_layers} '
                    f'layers: valid indices are {-num_layers}..{num_layers - 1})')
            resolved.append(layer % num_layers)
        if len(set(resolved)) != len(resolved):
            raise ValueError(f'guided_layers {tuple(self.guided_layers)} name a layer twice')
        if resolved and self.num_guided_prompts == 0:
            raise ValueError('guided layers need prompts: num_guided_prompts is 0')
        return tuple(sorted(resolved))
