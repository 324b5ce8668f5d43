"""The DA-VPT backbone for any host ViT: frozen blocks run with deep prompts, recording taps.

This is the one piece of code that both ``DAVPTViT`` backbones (mmpretrain's and
mmsegmentation's) share. A host class embeds the image its own way, then hands the token
sequence to :meth:`PromptedViTMixin.forward_blocks`, which runs the frozen transformer blocks with
VPT-Deep prompts through ``scaled_dot_product_attention`` and records what the metric losses and
the class-to-prompt mapping read (the *taps*).

The mixin composes the concepts that live in modules of their own: the options
(:class:`~.prompt_options.PromptOptions`), the prompts (:class:`~.prompts.DeepPrompts`), the taps
(:class:`~.taps.PromptTaps`), DA-VPT+'s bias tuning (:mod:`.bias_tuning`), attention recording
(:class:`~.attention_recorder.AttentionRecorder`), the host interface
(:class:`~.block_parts.BlockParts`) and the frozen weights' strict loading and completion of
trainable-only state dicts (:class:`~mmda_vpt.checkpoints.frozen_weights.FrozenWeights`); it owns
freezing and the forward of the prompted blocks. The file is above 400 lines because it is that
one class, whose every separable concept has a module of its own.
"""
from contextlib import contextmanager
from typing import ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import drop_path
from torch.utils.checkpoint import checkpoint

from mmda_vpt.checkpoints.base_weights import base_weights_from_init_cfg, save_base_weights_hook
from mmda_vpt.checkpoints.frozen_weights import FrozenWeights
from mmda_vpt.checkpoints.trainable_state import (count_params, log_trainable_params,
                                                  trainable_state_dict)
from .attention_recorder import AttentionRecorder
from .bias_tuning import qkv_row_indices, qkv_rows, tuned_qkv_bias, tuned_qkv_name
from .block_parts import BlockParts
from .prompt_options import QKV_BIAS_PARTS, PromptOptions
from .prompts import DeepPrompts, patches_only_mask
from .taps import LayerTaps, PromptTaps

__all__ = ['PromptedViTMixin', 'PromptTaps', 'BlockParts']

#: Where each block part lives in :class:`BlockParts`: (field, tensor attribute).
_BLOCK_PART_TENSORS = {
    'attn_out_bias': ('proj_bias_owner', 'bias'),
    'fc1_bias': ('fc1', 'bias'),
    'fc2_bias': ('fc2', 'bias'),
    'norm1_weight': ('norm1', 'weight'),
    'norm1_bias': ('norm1', 'bias'),
    'norm2_weight': ('norm2', 'weight'),
    'norm2_bias': ('norm2', 'bias'),
}


class PromptedViTMixin:
    """Mixin that turns a host ViT (with ``self.layers``) into a DA-VPT backbone.

    A host class takes the options of :class:`~.prompt_options.PromptOptions` as keyword
    arguments (``PromptOptions.pop_from(kwargs)``), calls :meth:`_init_prompts` at the end of its
    ``__init__``, implements :meth:`_block_parts`, and routes its blocks through
    :meth:`forward_blocks`.
    """

    num_prefix_tokens: int = 1
    #: The bias parts that the host gives (:meth:`_host_part_tensors`), not the blocks.
    _host_part_tensors_names = ('patch_embed_bias', 'final_norm_weight', 'final_norm_bias')

    # ------------------------------------------------------------------ construction
    def _init_prompts(self, num_layers: int, embed_dims: int, patch_size: Tuple[int, int],
                      num_prefix_tokens: int, options: PromptOptions) -> None:
        """Create the prompts and the tuned biases, then freeze everything else.

        Args:
            num_layers (int): The host's depth.
            embed_dims (int): The host's token width.
            patch_size (tuple[int, int]): The patch embedding's kernel size.
            num_prefix_tokens (int): Tokens before the prompts (1 with a CLS token).
            options (PromptOptions): The prompt options the backbone was given.
        """
        guided_layers = options.resolve_guided_layers(num_layers)
        self.embed_dims_ = embed_dims
        self.num_prefix_tokens = num_prefix_tokens
        self.num_prompts = options.num_prompts
        self.num_guided_prompts = options.num_guided_prompts
        self.guided_layers = guided_layers
        self.prompt_init = options.prompt_init
        self.prompt_init_scale = options.prompt_init_scale
        self.prompt_norm = options.prompt_norm
        self.prompt_attn_mask = options.prompt_attn_mask
        self.bias_tune = options.bias_tune
        self.bias_parts = options.bias_parts
        self.learnable_cls_token = options.learnable_cls_token
        self.with_cp = options.with_cp
        # Stochastic depth of the frozen blocks, rising linearly over the depth (as timm's).
        self.frozen_drop_path_rates = tuple(
            float(r) for r in torch.linspace(0, options.frozen_drop_path_rate, num_layers))
        self.record_taps = True
        self._force_taps = False
        self.taps: Optional[PromptTaps] = None
        self.attention_recorder = AttentionRecorder()

        self.prompts = DeepPrompts(options.prompt_counts(num_layers), embed_dims, patch_size,
                                   num_prefix_tokens, init=options.prompt_init,
                                   dropout=options.prompt_dropout,
                                   init_scale=options.prompt_init_scale,
                                   guided_layers=guided_layers, norm=options.prompt_norm)
        self._init_base_weights()

        all_parts = self._all_parts()
        param_names = {id(p): n for n, p in self.named_parameters()}
        # The tuned rows of the fused qkv bias: a parameter of their own (``kv_bias`` ...).
        self.tuned_qkv_rows = qkv_row_indices(self.bias_parts)
        self.tuned_qkv_name = tuned_qkv_name(self.tuned_qkv_rows) if self.tuned_qkv_rows \
            else None
        if self.tuned_qkv_rows:
            if any(parts.qkv_bias is None for parts in all_parts):
                raise ValueError(f'bias_tune={self.bias_tune!r} needs attention with qkv biases '
                                 '(qkv_bias=True)')
            self._qkv_bias_names = [param_names[id(p.qkv_bias)] for p in all_parts]
            self.register_parameter(self.tuned_qkv_name, nn.Parameter(
                qkv_rows([p.qkv_bias.detach() for p in all_parts], self.tuned_qkv_rows)))
            self._register_load_state_dict_pre_hook(self._fill_kv_bias)
        else:
            self.kv_bias = None
        self._freeze_pretrained()

    @property
    def tuned_qkv_param(self) -> Optional[nn.Parameter]:
        """The tuned rows of the fused qkv biases (layers, rows, D), or None."""
        return getattr(self, self.tuned_qkv_name) if self.tuned_qkv_name else None

    @property
    def prompt_counts(self) -> Tuple[int, ...]:
        """Prompts of each layer now (all 0 inside :meth:`prompts_disabled`)."""
        return self.prompts.counts

    @property
    def prompt_dropout(self) -> nn.Dropout:
        """The dropout on the prompts, the one module that follows ``train()``."""
        return self.prompts.dropout

    @property
    def attention_maps(self) -> Dict[int, torch.Tensor]:
        """The maps of the last :meth:`record_attention`."""
        return self.attention_recorder.maps

    def reset_prompts(self) -> None:
        """(Re-)initialize the prompts as VPT does."""
        self.prompts.reset()

    def _block_parts(self, layer: nn.Module) -> BlockParts:
        """The frozen pieces of one host block; implemented by the host class."""
        raise NotImplementedError

    def _all_parts(self) -> List[BlockParts]:
        return [self._block_parts(layer) for layer in self.layers]

    def _host_trainable_extras(self) -> List[nn.Parameter]:
        """Biases of host norms that ``bias_tune='all'`` also unfreezes (not a bias part)."""
        return []

    def _host_part_tensors(self) -> Dict[str, Optional[torch.Tensor]]:
        """The host's ``patch_embed_bias``, ``final_norm_weight`` and ``final_norm_bias``."""
        return {}

    def bias_part_tensors(self, part: str) -> List[torch.Tensor]:
        """The pre-trained tensors of one bias part (not Q/K/V: see :attr:`tuned_qkv_param`).

        Args:
            part (str): A name out of :data:`~.prompt_options.BIAS_PARTS`.

        Returns:
            list[Tensor]: One per layer for block parts, one for host parts; empty where the
            host lacks the part (no final norm, a bias-free layer).
        """
        if part in self._host_part_tensors_names:
            tensor = self._host_part_tensors().get(part)
            return [] if tensor is None else [tensor]
        field, attr = _BLOCK_PART_TENSORS[part]
        tensors = [getattr(getattr(parts, field), attr, None) for parts in self._all_parts()]
        return [tensor for tensor in tensors if tensor is not None]

    # ------------------------------------------------------------------ freezing
    def trainable_names(self) -> List[str]:
        """Names of the parameters that DA-VPT trains in this backbone."""
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def _freeze_pretrained(self) -> None:
        for param in self.parameters():
            param.requires_grad = False
        for prompt in self.prompts.values():
            prompt.requires_grad = True
        if self.tuned_qkv_param is not None:
            self.tuned_qkv_param.requires_grad = True
        legacy_all = self.bias_tune == 'all'  # releases what the host has, never fails
        for part in self.bias_parts:
            if part in QKV_BIAS_PARTS:  # rows of tuned_qkv_param
                continue
            tensors = self.bias_part_tensors(part)
            if not tensors and not legacy_all:
                raise ValueError(f'bias_tune part {part!r}: {type(self).__name__} has no such '
                                 'tensor (e.g. final_norm=False, or a patch embedding or '
                                 'layers without biases)')
            for tensor in tensors:
                tensor.requires_grad = True
        if legacy_all:
            for param in self._host_trainable_extras():
                param.requires_grad = True
        if self.learnable_cls_token:
            if getattr(self, 'cls_token', None) is None:
                raise ValueError('learnable_cls_token needs a CLS token')
            self.cls_token.requires_grad = True

    def train(self, mode: bool = True):
        """Keep every pre-trained module in eval mode: dropout and drop-path stay off."""
        super().train(mode)
        for module in self.modules():
            if module is not self:
                module.eval()
        self.prompt_dropout.train(mode)
        return self

    # ------------------------------------------------------------------ weights
    def _init_base_weights(self) -> None:
        """Give the backbone its :class:`~mmda_vpt.checkpoints.FrozenWeights`.

        It carries where the frozen weights come from in every state dict (``_base_weights``,
        the pre-trained checkpoint of ``init_cfg`` or the one a loaded state dict names) and,
        as the first load pre-hook (so that the host's hooks, position-embedding resizing, see
        the whole dict), completes trainable-only state dicts from their base weights.
        """
        self.frozen_weights = FrozenWeights(
            self, base_weights_from_init_cfg(getattr(self, 'init_cfg', None)))
        self._register_state_dict_hook(save_base_weights_hook)
        handle = self._register_load_state_dict_pre_hook(
            self.frozen_weights.complete_state_dict)
        self._load_state_dict_pre_hooks.move_to_end(handle.id, last=False)

    @property
    def base_weights(self) -> Optional[dict]:
        """``{'path', 'prefix'}`` of the pre-trained checkpoint the frozen weights come from."""
        return self.frozen_weights.base_weights

    def frozen_fingerprint(self) -> Optional[str]:
        """The fingerprint of the frozen weights (:meth:`FrozenWeights.fingerprint`)."""
        return self.frozen_weights.fingerprint()

    def _fill_kv_bias(self, state_dict, prefix, *args, **kwargs) -> None:
        """Take the tuned Q/K/V biases from a host checkpoint's fused qkv biases when absent."""
        key = prefix + self.tuned_qkv_name
        if key in state_dict:
            return
        biases = [state_dict.get(prefix + name) for name in self._qkv_bias_names]
        if any(bias is None for bias in biases):
            return
        state_dict[key] = qkv_rows(biases, self.tuned_qkv_rows)

    def _sync_kv_bias(self) -> None:
        """Copy the fused qkv biases' rows into the tuned parameter (after the host's init)."""
        if self.tuned_qkv_param is not None:
            with torch.no_grad():
                self.tuned_qkv_param.copy_(qkv_rows([p.qkv_bias for p in self._all_parts()],
                                                   self.tuned_qkv_rows))

    def init_weights(self) -> None:
        """Load ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=None)`` strictly.

        Every pre-trained parameter must be in the checkpoint and every checkpoint key must be
        used, except the parameters DA-VPT adds; anything else raises, naming the keys.
        Other ``init_cfg`` types fall back to the host's initialization.
        """
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.frozen_weights.load_pretrained(cfg['checkpoint'], cfg.get('prefix'))
            self._is_init = True
        else:
            super().init_weights()
            self._sync_kv_bias()
            self.frozen_weights.changed()
        self.log_param_summary()

    def adapt_pretrained(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Host hook to adapt a pre-trained state dict (e.g. resize position embeddings)."""
        return state_dict

    def new_param_names(self) -> List[str]:
        """Parameters that DA-VPT adds; a host checkpoint does not hold them."""
        names = [f'prompts.{i}' for i in self.prompts.keys()]
        if self.tuned_qkv_name is not None:
            names.append(self.tuned_qkv_name)
        return names

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Only the trained parameters of this backbone (prompts, tuned biases, CLS token)."""
        return trainable_state_dict(self)

    def check_loaded_keys(self, missing: Sequence[str], unexpected: Sequence[str],
                          source: str) -> None:
        """Raise when a pre-trained checkpoint does not fit the architecture."""
        new = set(self.new_param_names())
        missing = [k for k in missing if k not in new]
        if missing or unexpected:
            raise KeyError(
                f'checkpoint {source} does not fit {type(self).__name__}: '
                f'missing keys: {sorted(missing) or "none"}; '
                f'unexpected keys: {sorted(unexpected) or "none"}. Convert it with '
                'tools/model_converters/ or set init_cfg.prefix to the backbone prefix.')

    # ------------------------------------------------------------------ attention maps
    def record_attention(self, layers: Optional[Sequence[int]] = None) -> ContextManager[dict]:
        """Record attention maps of the prefix tokens and prompts for the given layers.

        Inside the context, the forward computes the softmax explicitly for those layers (all
        layers when ``layers`` is None) and stores ``attention_maps[layer]`` of shape
        (B, heads, num_prefix_tokens + M, tokens): the rows of the CLS token and of every prompt
        over all tokens; each row sums to 1, and the patches are the last N columns.

        Args:
            layers (Sequence[int], optional): Layers to record; negative indices count from the
                end. Defaults to None (all).

        Returns:
            A context manager that yields the ``attention_maps`` dict, filled by the forward
            passes in the context.
        """
        return self.attention_recorder.record(layers, len(self.layers))

    @contextmanager
    def prompts_disabled(self) -> Iterator[None]:
        """Run as the plain pre-trained ViT and record the taps, in any mode.

        Inside the context no layer has prompts (``forward_blocks`` inserts and strips
        nothing) and ``taps`` (``cls_final``, ``patch_final``) are recorded in eval mode too,
        so the class-to-prompt mapping can read the pre-trained features without dropout.
        """
        self._force_taps = True
        try:
            with self.prompts.disabled():
                yield
        finally:
            self._force_taps = False
            self.taps = None

    # ------------------------------------------------------------------ forward
    def _qkv_bias(self, index: int, parts: BlockParts) -> Optional[torch.Tensor]:
        tuned = self.tuned_qkv_param
        return tuned_qkv_bias(parts.qkv_bias, None if tuned is None else tuned[index],
                              self.tuned_qkv_rows)

    def _attn_mask(self, index: int, tokens: int,
                   device: torch.device) -> Optional[torch.Tensor]:
        """Layer ``index``'s attention mask (``prompt_attn_mask``), or None (full attention)."""
        count = self.prompt_counts[index]
        if self.prompt_attn_mask is None or count == 0:
            return None
        return patches_only_mask(self.num_prefix_tokens, count, tokens, device)

    def _block(self, index: int, x: torch.Tensor, guided: bool,
               want_maps: bool) -> Tuple[torch.Tensor, Optional[LayerTaps]]:
        """One frozen block on ``x`` (B, T, D); returns the output and a guided layer's taps."""
        parts = self._block_parts(self.layers[index])
        batch, tokens, dim = x.shape
        heads = parts.num_heads
        h = parts.norm1(x)
        qkv = F.linear(h, parts.qkv_weight, self._qkv_bias(index, parts))
        q, k, v = qkv.view(batch, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        mask = self._attn_mask(index, tokens, x.device)
        if want_maps:
            rows = self.num_prefix_tokens + self.prompt_counts[index]
            out = self.attention_recorder.attend(q, k, v, index, rows, attn_mask=mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        taps = None
        if guided:
            start = self.num_prefix_tokens + self.prompt_counts[index]
            prompt_raw = self.prompts.tokens(index)  # normalized with prompt_norm
            bias = self._qkv_bias(index, parts)
            prompt_query = F.linear(parts.norm1(prompt_raw), parts.qkv_weight[:dim],
                                    None if bias is None else bias[:dim])
            # A copy, not a view: a view would keep the whole qkv alive (also under with_cp).
            cls_query = (qkv[:, 0, :dim].clone()
                         if self.num_prefix_tokens > 0 else x.new_zeros(0))
            taps = LayerTaps(prompt_query, prompt_raw, out[:, start:], x[:, start:], cls_query)
        rate = self.frozen_drop_path_rates[index] if self.training else 0.0
        if rate > 0:
            x = x + drop_path(parts.layer_scale(parts.proj(out)), rate, True)
            # The FFN adds its identity; a zero identity gives its branch alone.
            x = x + drop_path(parts.ffn(parts.norm2(x), identity=x.new_zeros(())), rate, True)
            return x, taps
        x = x + parts.layer_scale(parts.proj(out))
        x = parts.ffn(parts.norm2(x), identity=x)
        return x, taps

    def forward_blocks(self, x: torch.Tensor, patch_resolution: Tuple[int, int],
                       final_norm: Optional[nn.Module],
                       out_indices: Sequence[int],
                       strip_prompts: bool = True) -> List[torch.Tensor]:
        """Run all blocks with deep prompts.

        Args:
            x (Tensor): Embedded tokens ``[prefix, patches]`` (B, P + N, D).
            patch_resolution (tuple[int, int]): (H, W) of the patch grid.
            final_norm (nn.Module, optional): Norm applied after the last block, or None.
            out_indices (Sequence[int]): Layers whose outputs (prompts stripped, final norm
                applied after the last layer) are returned.
            strip_prompts (bool): Whether the returned outputs lose the layer's prompts.
                Defaults to True.

        Returns:
            list[Tensor]: ``[prefix, patches]`` tokens (B, P + N, D) for each of ``out_indices``
            (``[prefix, prompts, patches]`` without ``strip_prompts``).
        """
        record = (self.training or self._force_taps) and self.record_taps
        taps = PromptTaps(guided_layers=self.guided_layers,
                          patch_resolution=tuple(patch_resolution)) if record else None
        outs = []
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            x = self.prompts.insert(x, i, replace=i > 0)
            guided = record and i in self.guided_layers
            want_maps = self.attention_recorder.wants(i)
            if self.with_cp and self.training and torch.is_grad_enabled():
                x, layer_taps = checkpoint(
                    self._block, i, x, guided, want_maps, use_reentrant=False)
            else:
                x, layer_taps = self._block(i, x, guided, want_maps)
            if guided:
                taps.add_layer(layer_taps, has_cls=self.num_prefix_tokens > 0)
            if i == last and final_norm is not None:
                x = final_norm(x)
            if i in out_indices:
                outs.append(self.prompts.strip(x, i) if strip_prompts else x)
        if record:
            taps.set_final(self.prompts.strip(x, last), self.num_prefix_tokens)
        self.taps = taps
        return outs

    # ------------------------------------------------------------------ reporting
    def param_summary(self) -> Tuple[int, int]:
        """(trainable, total) parameter counts of this backbone."""
        return count_params(self)

    def log_param_summary(self) -> None:
        log_trainable_params(self, once=False, details=(
            f'prompts per layer {self.prompt_counts}, guided layers {self.guided_layers}, '
            f'bias_tune={self.bias_tune}'))
