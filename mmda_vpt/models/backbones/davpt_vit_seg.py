"""``DAVPTViT`` for mmsegmentation: its ``VisionTransformer`` with DA-VPT prompts."""
import math
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmseg.models.backbones.vit import VisionTransformer
from mmseg.registry import MODELS

from .block_parts import BlockParts
from .prompt_options import PromptOptions
from .prompted_vit_mixin import PromptedViTMixin

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
        **kwargs: The prompt options of :class:`~.prompt_options.PromptOptions`
            (see mmpretrain's ``DAVPTViT``), and mmsegmentation ``VisionTransformer``
            arguments.
    """

    def __init__(self, **kwargs) -> None:
        options = PromptOptions.pop_from(kwargs)
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
            options=options)

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
            fc2=layer.ffn.layers[1],
            fc1=layer.ffn.layers[0][0])

    def _host_trainable_extras(self):
        norm = self.pre_ln if self.pre_norm else None
        return [] if getattr(norm, 'bias', None) is None else [norm.bias]

    def _host_part_tensors(self) -> Dict[str, Optional[torch.Tensor]]:
        final = self.norm1 if self.final_norm else None
        return dict(
            patch_embed_bias=self.patch_embed.projection.bias,
            final_norm_weight=getattr(final, 'weight', None),
            final_norm_bias=getattr(final, 'bias', None))

    def adapt_pretrained(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
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
