"""The DA-VPT prompt options, stated and checked once for every backbone.

Both ``DAVPTViT`` backbones take these options as keyword arguments next to their host's own
(``model.backbone.num_prompts=...`` in a config) and hand them over with
:meth:`PromptOptions.pop_from`; :class:`~.prompted_vit_mixin.PromptedViTMixin` applies them.
"""
import math
from dataclasses import dataclass, fields
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from .layer_indices import resolve_layer_indices

__all__ = ['PromptOptions', 'PROMPT_INITS', 'PROMPT_NORMS', 'PROMPT_ATTN_MASKS', 'BIAS_TUNE_MODES',
           'BIAS_PARTS', 'QKV_BIAS_PARTS']

PROMPT_INITS = ('uniform', 'xavier', 'xavier_stacked')
#: How the prompts are normalized before they enter a block (None: as they are).
PROMPT_NORMS = (None, 'l2')
#: Which keys the prompts' queries may attend to (None: every token).
PROMPT_ATTN_MASKS = (None, 'patches_only')
BIAS_TUNE_MODES = (None, 'kv', 'all')
#: The pre-trained tensors that ``bias_tune`` can release, one name each.
BIAS_PARTS = ('q_bias', 'k_bias', 'v_bias', 'attn_out_bias', 'fc1_bias', 'fc2_bias',
              'norm1_weight', 'norm1_bias', 'norm2_weight', 'norm2_bias', 'patch_embed_bias',
              'final_norm_weight', 'final_norm_bias')
#: The parts that are rows of the fused qkv bias, in its order.
QKV_BIAS_PARTS = ('q_bias', 'k_bias', 'v_bias')


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
            dim))), ``'xavier'`` (``xavier_uniform_`` on each layer's (length, dim) prompts) or
            ``'xavier_stacked'`` (the authors' code: ``xavier_uniform_`` on the prompts of the
            guided layers stacked to one (layers, length, dim) tensor, and on those of the other
            layers stacked to another: U(-v, v), v = sqrt(6 / ((length + layers) * dim))).
            Defaults to ``'uniform'``.
        prompt_init_scale (float): The initialized prompts are multiplied by it (the authors'
            code divides by 8 in most rows: 0.125). Defaults to 1.0.
        prompt_norm (str, optional): ``'l2'``: each prompt token is scaled to unit L2 norm over
            the width (``F.normalize(p, dim=-1, eps=1e-6)``) in every layer before the prompt
            dropout and its insertion into the block, guided and other layers alike (the
            authors' ``vpt_norm: "l2"`` rows); the taps of the metric loss see the normalized
            prompts too. Defaults to None (the prompts as they are: the paper).
        prompt_attn_mask (str, optional): ``'patches_only'``: in every block the prompts'
            queries attend only to the patch tokens, not to the prefix (CLS) tokens, other
            prompts or themselves; the rows of the prefix tokens and of the patches are
            unmasked (the authors' ``mask: true`` rows). Defaults to None (full attention:
            the paper).
        bias_tune (str | Sequence[str], optional): DA-VPT+'s pre-trained tensors that train:
            ``'kv'`` the K and V biases of attention (the paper); ``'all'`` also the biases of
            the attention output projection, the second MLP layer, the LayerNorms and the final
            norm; or a tuple of part names out of :data:`BIAS_PARTS` (``'kv'`` is
            ``('k_bias', 'v_bias')``; the authors' rows are
            :func:`~.bias_tuning.authors_bias_parts`). Defaults to None (none).
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
    prompt_init_scale: float = 1.0
    prompt_norm: Optional[str] = None
    prompt_attn_mask: Optional[str] = None
    bias_tune: Union[None, str, Sequence[str]] = None
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
        if isinstance(self.prompt_init_scale, bool) or \
                not isinstance(self.prompt_init_scale, (int, float)) or \
                not math.isfinite(self.prompt_init_scale) or self.prompt_init_scale <= 0:
            raise ValueError('prompt_init_scale must be a positive finite number, got '
                             f'{self.prompt_init_scale!r}')
        self.prompt_init_scale = float(self.prompt_init_scale)
        if self.prompt_norm not in PROMPT_NORMS:
            raise ValueError(
                f'prompt_norm must be one of {PROMPT_NORMS}, got {self.prompt_norm!r}')
        if self.prompt_attn_mask not in PROMPT_ATTN_MASKS:
            raise ValueError(f'prompt_attn_mask must be one of {PROMPT_ATTN_MASKS}, got '
                             f'{self.prompt_attn_mask!r}')
        self.bias_tune = self._check_bias_tune(self.bias_tune)
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ValueError(f'prompt_dropout must be in [0, 1), got {self.prompt_dropout}')
        if not 0.0 <= self.frozen_drop_path_rate < 1.0:
            raise ValueError('frozen_drop_path_rate must be in [0, 1), got '
                             f'{self.frozen_drop_path_rate}')
        if isinstance(self.guided_layers, int):
            self.guided_layers = (self.guided_layers, )

    @staticmethod
    def _check_bias_tune(value: Any) -> Union[None, str, Tuple[str, ...]]:
        if isinstance(value, str) or value is None:
            if value not in BIAS_TUNE_MODES:
                raise ValueError(f'bias_tune must be one of {BIAS_TUNE_MODES} or a tuple of '
                                 f'parts out of {BIAS_PARTS}, got {value!r}')
            return value
        if not isinstance(value, (list, tuple)):
            raise ValueError(f'bias_tune must be one of {BIAS_TUNE_MODES} or a tuple of parts '
                             f'out of {BIAS_PARTS}, got {value!r}')
        unknown = [part for part in value if part not in BIAS_PARTS]
        if unknown:
            raise ValueError(f'bias_tune names unknown parts {unknown}; the parts are '
                             f'{BIAS_PARTS}')
        if len(set(value)) != len(value):
            raise ValueError(f'bias_tune {tuple(value)} names a part twice')
        if not value:
            return None
        return tuple(value)

    @property
    def bias_parts(self) -> Tuple[str, ...]:
        """The parts of :data:`BIAS_PARTS` that ``bias_tune`` releases, in that order.

        ``'all'`` gives its block parts (the K/V, attention-output, second-MLP and LayerNorm
        biases) and the final norm's bias; the host may add biases of its own norms to it.
        """
        if self.bias_tune is None:
            return ()
        if self.bias_tune == 'kv':
            return ('k_bias', 'v_bias')
        if self.bias_tune == 'all':
            return ('k_bias', 'v_bias', 'attn_out_bias', 'fc2_bias', 'norm1_bias', 'norm2_bias',
                    'final_norm_bias')
        return tuple(part for part in BIAS_PARTS if part in self.bias_tune)

    def prompt_counts(self, num_layers: int) -> Tuple[int, ...]:
        """Prompts of each layer of a ViT of ``num_layers`` blocks.

        Args:
            num_layers (int): The depth of the host ViT.

        Returns:
            tuple[int]: ``num_guided_prompts`` in the guided layers, ``num_prompts`` elsewhere.
        """
        guided = self.resolve_guided_layers(num_layers)
        return tuple(self.num_guided_prompts if i in guided else self.num_prompts
                     for i in range(num_layers))

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
        resolved = resolve_layer_indices(self.guided_layers, num_layers, 'guided layer')
        if len(set(resolved)) != len(resolved):
            raise ValueError(f'guided_layers {tuple(self.guided_layers)} name a layer twice')
        if resolved and self.num_guided_prompts == 0:
            raise ValueError('guided layers need prompts: num_guided_prompts is 0')
        return tuple(sorted(resolved))
