"""``DAVPTViT`` for mmsegmentation: its ``VisionTransformer`` with DA-VPT prompts."""
import math
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmseg.models.backbones.vit import VisionTransformer
from mmseg.registry import MODELS

from .prompted_vit_mixin import BlockParts, PromptedViTMixin

__all__ = ['DAVPTViTSeg']


@MODELS.register_module(name='DAVPTViT')
class DAVPTViTSeg(PromptedViTMixin, VisionTransformer):
    """mmsegmentation's ViT, frozen, with VPT-Deep prompts and the DA-VPT taps.

    Registered as ``DAVPTViT`` in mmsegmentation's MODELS. Takes every argument of
    mmsegmentation's ``VisionTransformer`` (``embed_dims``, ``num_layers``, ``num_heads``,
    ``img_size``, ``out_indices``, ``with_cls_token``, ``final_norm``, ...), loads its
    checkpoints unchanged (position embeddings resized to ``img_size``), and returns NCHW maps
    with the prompts stripped.

    Args:
        num_prompts (int): Prompts per layer; 0 gives a plain (frozen) ViT. Defaults to 10.
        guided_layers (Sequence[int]): 0-based layers that receive metric guidance; negative
            indices count from the end. Defaults to ``(-1,)``.
        num_guided_prompts (int, optional): Prompts in the guided layers (the paper's M).
            Defaults to None, meaning ``num_prompts``.
        prompt_dropout (float): Dropout on the prompts. Defaults to 0.0.
        prompt_init (str): ``'uniform'`` or ``'xavier'``. Defaults to ``'uniform'``.
        bias_tune (str, optional): None, ``'kv'`` or ``'all'`` (see mmpretrain's ``DAVPTViT``).
            Defaults to None.
        learnable_cls_token (bool): Whether the CLS token trains. Defaults to False.
        with_cp (bool): Activation checkpointing of the blocks in training. Defaults to False.
        frozen_drop_path_rate (float): Drop-path (stochastic depth) on the residual branches of
            the frozen blocks in training, rising linearly over the depth from 0 to this rate
            (the authors run their frozen backbone so); the weights stay frozen. The host's own
            ``drop_path_rate`` stays inert (VPT keeps the frozen encoder in eval mode).
            Defaults to 0.0 (off).
        **kwargs: mmsegmentation ``VisionTransformer`` arguments.
    """

    def __init__(self,
                 num_prompts: int = 10,
                 guided_layers: Sequence[int] = (-1, ),
                 num_guided_prompts: Optional[int] = None,
                 prompt_dropout: float = 0.0,
                 prompt_init: str = 'uniform',
                 bias_tune: Optional[str] = None,
                 learnable_cls_token: bool = False,
                 with_cp: bool = False,
                 frozen_drop_path_rate: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        num_layers = len(self.layers)
        self.out_indices = [i % num_layers if -num_layers <= i < num_layers else i
                            for i in self.out_indices]
        bad = [i for i in self.out_indices if not 0 <= i < num_layers]
        if bad:
            raise ValueError(f'out_indices {bad} are outside the depth ({num_layers} layers)')
        patch = self.patch_embed.projection.kernel_size
        self._init_prompts(
            num_layers=num_layers,
            embed_dims=self.cls_token.shape[-1],
            patch_size=tuple(patch),
            num_prefix_tokens=1 if self.with_cls_token else 0,
            num_prompts=num_prompts,
            guided_layers=guided_layers,
            num_guided_prompts=num_guided_prompts,
            prompt_dropout=prompt_dropout,
            prompt_init=prompt_init,
            bias_tune=bias_tune,
            learnable_cls_token=learnable_cls_token,
            with_cp=with_cp,
            frozen_drop_path_rate=frozen_drop_path_rate)

    def _block_parts(self, layer: nn.Module) -> BlockParts:
        mha = layer.attn.attn
        return BlockParts(
            norm1=layer.norm1,
            qkv_weight=mha.in_proj_weight,
            qkv_bias=mha.in_proj_bias,
            num_heads=mha.num_heads,
            proj=mha.out_proj,
            layer_scale=nn.Identity(),
            norm2=layer.norm2,
            ffn=layer.ffn,
            proj_bias_owner=mha.out_proj,
            fc2=layer.ffn.layers[1])

    def _host_trainable_extras(self):
        norms = [self.norm1 if self.final_norm else None,
                 self.pre_ln if self.pre_norm else None]
        return [m.bias for m in norms
                if m is not None and getattr(m, 'bias', None) is not None]

    def _adapt_pretrained(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        pos = state_dict.get('pos_embed')
        if pos is not None and pos.shape != self.pos_embed.shape:
            print_log(f'Resize the pos_embed shape from {tuple(pos.shape)} to '
                      f'{tuple(self.pos_embed.shape)}', logger='current')
            size = int(math.sqrt(pos.shape[1] - 1))
            h, w = self.img_size
            state_dict['pos_embed'] = self.resize_pos_embed(
                pos, (h // self.patch_size, w // self.patch_size), (size, size),
                self.interpolate_mode)
        return state_dict

    def _to_map(self, x: torch.Tensor, hw_shape) -> torch.Tensor:
        prefix = self.num_prefix_tokens
        out = x[:, prefix:]
        batch, _, channels = out.shape
        out = out.reshape(batch, hw_shape[0], hw_shape[1], channels).permute(0, 3, 1, 2)
        out = out.contiguous()
        if self.output_cls_token:
            return [out, x[:, 0]]
        return out

    def forward(self, inputs: torch.Tensor):
        batch = inputs.shape[0]
        x, hw_shape = self.patch_embed(inputs)
        x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
        x = self._pos_embeding(x, hw_shape, self.pos_embed)
        if not self.with_cls_token:
            x = x[:, 1:]
        if self.pre_norm:
            x = self.pre_ln(x)
        outs = []
        if self.out_origin:
            outs.append(self._to_map(x, hw_shape))
        final_norm = self.norm1 if self.final_norm else None
        for out in self.forward_blocks(x, hw_shape, final_norm, self.out_indices):
            outs.append(self._to_map(out, hw_shape))
        return tuple(outs)
