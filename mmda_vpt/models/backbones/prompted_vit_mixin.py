"""Deep visual prompts, DA-VPT+ bias tuning and metric-loss taps for any host ViT.

This is the one piece of code that both ``DAVPTViT`` backbones (mmpretrain's and
mmsegmentation's) share. A host class embeds the image its own way, then hands the token
sequence to :meth:`PromptedViTMixin.forward_blocks`, which runs the frozen transformer blocks with
VPT-Deep prompts through ``scaled_dot_product_attention`` and records what the metric losses and
the class-to-prompt mapping read (the *taps*).

Token layout inside the blocks: ``[prefix tokens (CLS), prompts, patches]``; the number of tokens
before the prompts is ``num_prefix_tokens`` and the prompts are replaced at every layer, as in
VPT-Deep.
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import drop_path
from mmengine.logging import print_log
from torch.utils.checkpoint import checkpoint

from mmda_vpt.utils.base_weights import (BASE_WEIGHTS_KEY, base_weights_from_init_cfg,
                                         decode_base_weights, resolve_base_weights,
                                         same_base_weights, save_base_weights_hook)

__all__ = ['PromptedViTMixin', 'PromptTaps', 'BlockParts']

PROMPT_INITS = ('uniform', 'xavier')
BIAS_TUNE_MODES = (None, 'kv', 'all')


class BlockParts(NamedTuple):
    """The frozen pieces of one pre-norm transformer block, as the host names them."""
    norm1: nn.Module
    qkv_weight: torch.Tensor  # (3D, D), rows ordered q, k, v
    qkv_bias: Optional[torch.Tensor]  # (3D,)
    num_heads: int
    proj: nn.Module  # attention output projection
    layer_scale: nn.Module  # identity unless the host uses layer scale
    norm2: nn.Module
    ffn: nn.Module  # an mmcv ``FFN``: ``ffn(x, identity=...)`` adds the residual
    proj_bias_owner: Optional[nn.Module]  # module whose ``bias`` is the projection bias
    fc2: Optional[nn.Linear]  # the second MLP linear layer


@dataclass
class PromptTaps:
    """What one training forward recorded, one list entry per guided layer.

    Attributes:
        guided_layers: The 0-based guided layers, in order.
        prompt_query: The prompts' query projections ``LN(p) W_Q + b_Q``, each (M, D).
        prompt_raw: The raw prompt parameters, each (M, D).
        patch_attn: Post-attention patch representations (concatenated head outputs before the
            output projection), each (B, N, D).
        patch_input: Block-input patch tokens, each (B, N, D) (the authors' variant).
        cls_query: The CLS token's query projection, each (B, D); empty without a CLS token.
        cls_final: The final CLS feature after the final norm (B, D), or None without one.
        patch_final: The final patch tokens (B, N, D) after the final norm.
        patch_resolution: (H, W) of the patch grid.
    """
    guided_layers: Tuple[int, ...] = ()
    prompt_query: List[torch.Tensor] = field(default_factory=list)
    prompt_raw: List[torch.Tensor] = field(default_factory=list)
    patch_attn: List[torch.Tensor] = field(default_factory=list)
    patch_input: List[torch.Tensor] = field(default_factory=list)
    cls_query: List[torch.Tensor] = field(default_factory=list)
    cls_final: Optional[torch.Tensor] = None
    patch_final: Optional[torch.Tensor] = None
    patch_resolution: Tuple[int, int] = (0, 0)


class PromptedViTMixin:
    """Mixin that turns a host ViT (with ``self.layers``) into a DA-VPT backbone.

    A host class calls :meth:`_init_prompts` at the end of its ``__init__``, implements
    :meth:`_block_parts`, and routes its blocks through :meth:`forward_blocks`.
    """

    #: Names of the host's modules and parameters that stay trainable when asked to.
    num_prefix_tokens: int = 1

    # ------------------------------------------------------------------ construction
    def _init_prompts(self,
                      num_layers: int,
                      embed_dims: int,
                      patch_size: Tuple[int, int],
                      num_prefix_tokens: int,
                      num_prompts: int = 10,
                      guided_layers: Sequence[int] = (-1, ),
                      num_guided_prompts: Optional[int] = None,
                      prompt_dropout: float = 0.0,
                      prompt_init: str = 'uniform',
                      bias_tune: Optional[str] = None,
                      learnable_cls_token: bool = False,
                      with_cp: bool = False,
                      frozen_drop_path_rate: float = 0.0) -> None:
        """Create the prompts and the tuned biases, then freeze everything else."""
        if isinstance(num_prompts, bool) or not isinstance(num_prompts, int) or num_prompts < 0:
            raise ValueError(f'num_prompts must be a non-negative int, got {num_prompts!r}')
        if num_guided_prompts is None:
            num_guided_prompts = num_prompts
        if (isinstance(num_guided_prompts, bool) or not isinstance(num_guided_prompts, int)
                or num_guided_prompts < 0):
            raise ValueError('num_guided_prompts must be a non-negative int, '
                             f'got {num_guided_prompts!r}')
        if prompt_init not in PROMPT_INITS:
            raise ValueError(f'prompt_init must be one of {PROMPT_INITS}, got {prompt_init!r}')
        if bias_tune not in BIAS_TUNE_MODES:
            raise ValueError(f'bias_tune must be one of {BIAS_TUNE_MODES}, got {bias_tune!r}')
        if not 0.0 <= prompt_dropout < 1.0:
            raise ValueError(f'prompt_dropout must be in [0, 1), got {prompt_dropout}')
        if not 0.0 <= frozen_drop_path_rate < 1.0:
            raise ValueError('frozen_drop_path_rate must be in [0, 1), got '
                             f'{frozen_drop_path_rate}')
        if isinstance(guided_layers, int):
            guided_layers = (guided_layers, )
        resolved = []
        for layer in guided_layers:
            if not -num_layers <= layer < num_layers:
                raise ValueError(
                    f'guided layer {layer} is outside the depth of this ViT ({num_layers} '
                    f'layers: valid indices are {-num_layers}..{num_layers - 1})')
            resolved.append(layer % num_layers)
        if len(set(resolved)) != len(resolved):
            raise ValueError(f'guided_layers {tuple(guided_layers)} name a layer twice')
        if resolved and num_guided_prompts == 0:
            raise ValueError('guided layers need prompts: num_guided_prompts is 0')

        self.embed_dims_ = embed_dims
        self.num_prefix_tokens = num_prefix_tokens
        self.num_prompts = num_prompts
        self.num_guided_prompts = num_guided_prompts
        self.guided_layers = tuple(sorted(resolved))
        self.prompt_init = prompt_init
        self.bias_tune = bias_tune
        self.learnable_cls_token = learnable_cls_token
        self.with_cp = with_cp
        # Stochastic depth of the frozen blocks, rising linearly over the depth (as timm's).
        self.frozen_drop_path_rates = tuple(
            float(r) for r in torch.linspace(0, frozen_drop_path_rate, num_layers))
        self.record_taps = True
        self._force_taps = False
        self.taps: Optional[PromptTaps] = None
        self._attn_map_layers: Optional[Tuple[int, ...]] = None
        self.attention_maps: Dict[int, torch.Tensor] = {}

        self.prompt_counts = tuple(num_guided_prompts if i in self.guided_layers else num_prompts
                                   for i in range(num_layers))
        # Keyed by layer index; layers without prompts have no entry, so that num_prompts=0
        # has exactly the host's state dict.
        self.prompts = nn.ParameterDict({
            str(i): nn.Parameter(torch.zeros(m, embed_dims))
            for i, m in enumerate(self.prompt_counts) if m > 0
        })
        self.prompt_dropout = nn.Dropout(prompt_dropout)
        self._init_base_weights()
        patch_area = patch_size[0] * patch_size[1]
        self._prompt_bound = math.sqrt(6.0 / float(3 * patch_area + embed_dims))
        self.reset_prompts()

        all_parts = self._all_parts()
        param_names = {id(p): n for n, p in self.named_parameters()}
        if bias_tune is not None:
            if any(parts.qkv_bias is None for parts in all_parts):
                raise ValueError('bias_tune needs attention with qkv biases (qkv_bias=True)')
            self._qkv_bias_names = [param_names[id(p.qkv_bias)] for p in all_parts]
            # K and V biases live in their own parameter, so the fused qkv bias (and with it the
            # Q bias) stays frozen and untouched by weight decay.
            self.kv_bias = nn.Parameter(
                torch.stack([p.qkv_bias.detach().view(3, -1)[1:].clone() for p in all_parts]))
            self._register_load_state_dict_pre_hook(self._fill_kv_bias)
        else:
            self.kv_bias = None
        self._freeze_pretrained()

    def reset_prompts(self) -> None:
        """(Re-)initialize the prompts as VPT does."""
        for prompt in self.prompts.values():
            if self.prompt_init == 'uniform':
                nn.init.uniform_(prompt, -self._prompt_bound, self._prompt_bound)
            else:
                nn.init.xavier_uniform_(prompt)

    def _block_parts(self, layer: nn.Module) -> BlockParts:
        """The frozen pieces of one host block; implemented by the host class."""
        raise NotImplementedError

    def _all_parts(self) -> List[BlockParts]:
        return [self._block_parts(layer) for layer in self.layers]

    def _host_trainable_extras(self) -> List[nn.Parameter]:
        """Pre-trained parameters that ``bias_tune='all'`` unfreezes besides the block biases."""
        return []

    # ------------------------------------------------------------------ freezing
    def trainable_names(self) -> List[str]:
        """Names of the parameters that DA-VPT trains in this backbone."""
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def _freeze_pretrained(self) -> None:
        for param in self.parameters():
            param.requires_grad = False
        for prompt in self.prompts.values():
            prompt.requires_grad = True
        if self.kv_bias is not None:
            self.kv_bias.requires_grad = True
        if self.bias_tune == 'all':
            for parts in self._all_parts():
                tuned = [parts.proj_bias_owner, parts.fc2, parts.norm1, parts.norm2]
                for module in tuned:
                    if module is not None and getattr(module, 'bias', None) is not None:
                        module.bias.requires_grad = True
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
        """Carry where the frozen weights come from in the state dict (``_base_weights``).

        ``base_weights`` is the pre-trained checkpoint of ``init_cfg`` (or the one a loaded
        state dict names); ``_frozen_from`` is what the frozen weights hold now: None for the
        host's initialization, the pointer of a loaded base checkpoint, or ``{}`` after a full
        state dict without one.
        """
        self.base_weights = base_weights_from_init_cfg(getattr(self, 'init_cfg', None))
        self._frozen_from: Optional[dict] = None
        self._loading_base = False
        self._register_state_dict_hook(save_base_weights_hook)
        handle = self._register_load_state_dict_pre_hook(self._complete_from_base_weights)
        # First, so that the host's hooks (position-embedding resizing) see the whole dict.
        self._load_state_dict_pre_hooks.move_to_end(handle.id, last=False)

    def _complete_from_base_weights(self, state_dict, prefix, *args, **kwargs) -> None:
        """Load pre-hook: complete a state dict that holds only the trained parameters.

        A state dict with every frozen tensor loads as it is. One without them (a checkpoint of
        ``TrainableCheckpointHook``) must fit the trained parameters exactly; the frozen tensors
        then come from the base checkpoint its ``_base_weights`` entry names (loaded first,
        unless this backbone holds it already), or from this backbone when it holds loaded
        weights and the state dict names none. Otherwise the load fails: a model never goes on
        with randomly initialized frozen weights.
        """
        entry = state_dict.pop(prefix + BASE_WEIGHTS_KEY, None)
        if self._loading_base:  # _load_pretrained checks the base checkpoint itself
            return
        pointer = None
        if entry is not None:
            pointer = decode_base_weights(entry)
            self.base_weights = {k: v for k, v in pointer.items() if k in ('path', 'prefix')}
        given = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not given and entry is None:
            return
        own = self.state_dict(keep_vars=True)
        own.pop(BASE_WEIGHTS_KEY, None)
        trainable = set(self.trainable_names())
        frozen_missing = [k for k in own if k not in trainable and k not in given]
        if not frozen_missing:
            self._frozen_from = self.base_weights if pointer is not None else {}
            return
        self._check_trainable_fit(given, own, trainable, prefix)
        if pointer is not None and not same_base_weights(pointer, self._frozen_from):
            self._load_pretrained(resolve_base_weights(pointer), pointer.get('prefix'))
            self._frozen_from = self.base_weights
            own = self.state_dict(keep_vars=True)
        elif pointer is None and self._frozen_from is None:
            raise RuntimeError(
                f'this state dict holds {len(given)} of the {len(own)} tensors of '
                f'{type(self).__name__} ({prefix or "no prefix"}) and names no base weights to '
                'complete it (a trainable-only checkpoint of a model without init_cfg '
                "type='Pretrained'): load the base weights first or use a full checkpoint")
        for key in frozen_missing:
            state_dict[prefix + key] = own[key].detach()

    def _check_trainable_fit(self, given: Dict[str, torch.Tensor],
                             own: Dict[str, torch.Tensor], trainable: set, prefix: str) -> None:
        """Raise one line naming the keys and shapes where trained parameters do not fit."""
        missing = sorted(prefix + k for k in trainable if k not in given)
        unexpected = sorted(prefix + k for k in given if k not in own)
        shapes = [f'{prefix}{k} {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in '
                  'the model' for k, v in sorted(given.items())
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
        if missing or unexpected or shapes:
            raise ValueError(
                f'trainable-only checkpoint does not fit {type(self).__name__} (another '
                f'architecture or prompt count?): shape mismatches: {"; ".join(shapes) or "none"}'
                f'; missing keys: {missing or "none"}; unexpected keys: {unexpected or "none"}')

    def _fill_kv_bias(self, state_dict, prefix, *args, **kwargs) -> None:
        """Take the tuned K/V biases from a host checkpoint's fused qkv biases when absent."""
        key = prefix + 'kv_bias'
        if key in state_dict:
            return
        rows = []
        for name in self._qkv_bias_names:
            bias = state_dict.get(prefix + name)
            if bias is None:
                return
            rows.append(bias.view(3, -1)[1:])
        state_dict[key] = torch.stack(rows)

    def _sync_kv_bias(self) -> None:
        if self.kv_bias is not None:
            with torch.no_grad():
                self.kv_bias.copy_(
                    torch.stack([p.qkv_bias.view(3, -1)[1:] for p in self._all_parts()]))

    def init_weights(self) -> None:
        """Load ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=None)`` strictly.

        Every pre-trained parameter must be in the checkpoint and every checkpoint key must be
        used, except the parameters DA-VPT adds; anything else raises, naming the keys.
        Other ``init_cfg`` types fall back to the host's initialization.
        """
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self._load_pretrained(cfg['checkpoint'], cfg.get('prefix'))
            self._is_init = True
        else:
            super().init_weights()
            self._sync_kv_bias()
        self.log_param_summary()

    def _load_pretrained(self, filename: str, prefix: Optional[str] = None) -> None:
        from mmengine.runner.checkpoint import CheckpointLoader
        source = dict(path=filename, prefix=prefix)
        checkpoint = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
        state_dict = checkpoint
        for key in ('state_dict', 'model', 'module'):
            if isinstance(state_dict, dict) and key in state_dict \
                    and isinstance(state_dict[key], dict):
                state_dict = state_dict[key]
                break
        if prefix:
            if not prefix.endswith('.'):
                prefix += '.'
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()
                          if k.startswith(prefix)}
            if not state_dict:
                raise KeyError(f'checkpoint {filename} has no key starting with {prefix!r}')
        state_dict = self._adapt_pretrained(dict(state_dict))
        self._loading_base = True
        try:
            missing, unexpected = self.load_state_dict(state_dict, strict=False)
        finally:
            self._loading_base = False
        self.check_loaded_keys(missing, unexpected, filename)
        self._frozen_from = source
        print_log(f'{type(self).__name__}: loaded pre-trained weights from {filename}',
                  logger='current')

    def _adapt_pretrained(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Host hook to adapt a pre-trained state dict (e.g. resize position embeddings)."""
        return state_dict

    def new_param_names(self) -> List[str]:
        """Parameters that DA-VPT adds; a host checkpoint does not hold them."""
        names = [f'prompts.{i}' for i in self.prompts.keys()]
        if self.kv_bias is not None:
            names.append('kv_bias')
        return names

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        """Only the trained parameters of this backbone (prompts, tuned biases, CLS token)."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

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
    @contextmanager
    def record_attention(self, layers: Optional[Sequence[int]] = None) -> Iterator[dict]:
        """Record attention maps of the prefix tokens and prompts for the given layers.

        Inside the context, the forward computes the softmax explicitly for those layers (all
        layers when ``layers`` is None) and stores ``attention_maps[layer]`` of shape
        (B, heads, num_prefix_tokens + M, tokens): the rows of the CLS token and of every prompt
        over all tokens; each row sums to 1, and the patches are the last N columns.

        Yields:
            dict: The ``attention_maps`` dict, filled by the forward passes in the context.
        """
        num_layers = len(self.layers)
        if layers is None:
            layers = range(num_layers)
        resolved = []
        for layer in layers:
            if not -num_layers <= layer < num_layers:
                raise ValueError(f'attention layer {layer} is outside the depth ({num_layers})')
            resolved.append(layer % num_layers)
        self.attention_maps = {}
        self._attn_map_layers = tuple(resolved)
        try:
            yield self.attention_maps
        finally:
            self._attn_map_layers = None

    @contextmanager
    def prompts_disabled(self) -> Iterator[None]:
        """Run as the plain pre-trained ViT and record the taps, in any mode.

        Inside the context no layer has prompts (``forward_blocks`` inserts and strips
        nothing) and ``taps`` (``cls_final``, ``patch_final``) are recorded in eval mode too,
        so the class-to-prompt mapping can read the pre-trained features without dropout.
        """
        saved = self.prompt_counts
        self.prompt_counts = (0, ) * len(saved)
        self._force_taps = True
        try:
            yield
        finally:
            self.prompt_counts = saved
            self._force_taps = False
            self.taps = None

    # ------------------------------------------------------------------ forward
    def _qkv_bias(self, index: int, parts: BlockParts) -> Optional[torch.Tensor]:
        if self.kv_bias is None:
            return parts.qkv_bias
        dim = self.kv_bias.shape[-1]
        return torch.cat([parts.qkv_bias[:dim], self.kv_bias[index].flatten()])

    def _block(self, index: int, x: torch.Tensor, guided: bool,
               want_maps: bool) -> Tuple[torch.Tensor, tuple]:
        """One frozen block on ``x`` (B, T, D); returns the output and the taps of a guided layer."""
        parts = self._block_parts(self.layers[index])
        batch, tokens, dim = x.shape
        heads = parts.num_heads
        h = parts.norm1(x)
        qkv = F.linear(h, parts.qkv_weight, self._qkv_bias(index, parts))
        q, k, v = qkv.view(batch, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        if want_maps:
            rows = self.num_prefix_tokens + self.prompt_counts[index]
            scale = (dim // heads)**-0.5
            attn = (q * scale) @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            self.attention_maps[index] = attn[:, :, :rows].detach()
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        taps = ()
        if guided:
            start = self.num_prefix_tokens + self.prompt_counts[index]
            prompt_raw = self.prompts[str(index)]
            bias = self._qkv_bias(index, parts)
            prompt_query = F.linear(parts.norm1(prompt_raw), parts.qkv_weight[:dim],
                                    None if bias is None else bias[:dim])
            # A copy, not a view: a view would keep the whole qkv alive (also under with_cp).
            cls_query = (qkv[:, 0, :dim].clone()
                         if self.num_prefix_tokens > 0 else x.new_zeros(0))
            taps = (prompt_query, prompt_raw, out[:, start:], x[:, start:], cls_query)
        rate = self.frozen_drop_path_rates[index] if self.training else 0.0
        if rate > 0:
            x = x + drop_path(parts.layer_scale(parts.proj(out)), rate, True)
            # The FFN adds its identity; a zero identity gives its branch alone.
            x = x + drop_path(parts.ffn(parts.norm2(x), identity=x.new_zeros(())), rate, True)
            return x, taps
        x = x + parts.layer_scale(parts.proj(out))
        x = parts.ffn(parts.norm2(x), identity=x)
        return x, taps

    def insert_prompts(self, x: torch.Tensor, index: int, replace: bool) -> torch.Tensor:
        """Put layer ``index``'s prompts after the prefix tokens of ``x``.

        Args:
            x: Tokens (B, T, D).
            index: The layer whose prompts to use.
            replace: Whether ``x`` already holds the previous layer's prompts (VPT-Deep replaces
                them); the previous count is taken from ``prompt_counts[index - 1]``.
        """
        prefix = self.num_prefix_tokens
        old = self.prompt_counts[index - 1] if replace else 0
        count = self.prompt_counts[index]
        if count == 0 and old == 0:
            return x
        if count == 0:
            return torch.cat([x[:, :prefix], x[:, prefix + old:]], dim=1)
        prompts = self.prompt_dropout(self.prompts[str(index)]).to(x.dtype)
        prompts = prompts.unsqueeze(0).expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :prefix], prompts, x[:, prefix + old:]], dim=1)

    def strip_prompts(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Remove layer ``index``'s prompts from ``x``: ``[prefix, patches]``."""
        count = self.prompt_counts[index]
        if count == 0:
            return x
        prefix = self.num_prefix_tokens
        return torch.cat([x[:, :prefix], x[:, prefix + count:]], dim=1)

    def forward_blocks(self, x: torch.Tensor, patch_resolution: Tuple[int, int],
                       final_norm: Optional[nn.Module],
                       out_indices: Sequence[int]) -> List[torch.Tensor]:
        """Run all blocks with deep prompts.

        Args:
            x: Embedded tokens ``[prefix, patches]`` (B, P + N, D).
            patch_resolution: (H, W) of the patch grid.
            final_norm: Norm applied after the last block, or None.
            out_indices: Layers whose outputs (prompts stripped, final norm applied after the
                last layer) are returned.

        Returns:
            list[Tensor]: ``[prefix, patches]`` tokens (B, P + N, D) for each of ``out_indices``.
        """
        record = (self.training or self._force_taps) and self.record_taps
        taps = PromptTaps(guided_layers=self.guided_layers,
                          patch_resolution=tuple(patch_resolution)) if record else None
        maps = self._attn_map_layers
        outs = []
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            x = self.insert_prompts(x, i, replace=i > 0)
            guided = record and i in self.guided_layers
            want_maps = maps is not None and i in maps
            if self.with_cp and self.training and torch.is_grad_enabled():
                x, layer_taps = checkpoint(
                    self._block, i, x, guided, want_maps, use_reentrant=False)
            else:
                x, layer_taps = self._block(i, x, guided, want_maps)
            if guided:
                taps.prompt_query.append(layer_taps[0])
                taps.prompt_raw.append(layer_taps[1])
                taps.patch_attn.append(layer_taps[2])
                taps.patch_input.append(layer_taps[3])
                if self.num_prefix_tokens > 0:
                    taps.cls_query.append(layer_taps[4])
            if i == last and final_norm is not None:
                x = final_norm(x)
            if i in out_indices:
                outs.append(self.strip_prompts(x, i))
        if record:
            final = self.strip_prompts(x, last)
            prefix = self.num_prefix_tokens
            taps.cls_final = final[:, 0] if prefix > 0 else None
            taps.patch_final = final[:, prefix:]
            self.taps = taps
        else:
            self.taps = None
        return outs

    # ------------------------------------------------------------------ reporting
    def param_summary(self) -> Tuple[int, int]:
        """(trainable, total) parameter counts of this backbone."""
        from mmda_vpt.utils.params import count_params
        return count_params(self)

    def log_param_summary(self) -> None:
        from mmda_vpt.utils.params import log_trainable_params
        log_trainable_params(self, once=False, details=(
            f'prompts per layer {self.prompt_counts}, guided layers {self.guided_layers}, '
            f'bias_tune={self.bias_tune}'))
