"""``DAVPTViT`` for mmpretrain: its ``VisionTransformer`` with DA-VPT prompts."""
import logging
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import FFN
from mmengine.logging import print_log
from mmpretrain.models.backbones.vision_transformer import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

from .block_parts import BlockParts
from .prompt_options import PromptOptions
from .prompted_vit_mixin import PromptedViTMixin

__all__ = ['DAVPTViT']


@MODELS.register_module()
class DAVPTViT(PromptedViTMixin, VisionTransformer):
    """mmpretrain's ViT, frozen, with VPT-Deep prompts and the DA-VPT taps.

    Takes every argument of mmpretrain's ``VisionTransformer`` (``arch``, ``img_size``,
    ``patch_size``, ``out_type``, ``out_indices``, ``final_norm``, ...) and loads its checkpoints
    (keys such as ``layers.0.attn.qkv.weight``) unchanged. ``out_type`` takes one more value:
    ``'avg_prompts_patches'``, the mean of the final-norm outputs over the prompt and patch
    tokens (the CLS token left out), without mmpretrain's extra ``ln2`` (the authors' MAE
    pooling); ``'avg_featmap'`` stays mmpretrain's (patch tokens only, then ``ln2``).

    Args:
        *args: mmpretrain ``VisionTransformer`` positional arguments (``arch``, ...).
        **kwargs: The prompt options of :class:`~.prompt_options.PromptOptions`
            (``num_prompts``, ``guided_layers``, ``num_guided_prompts``, ``prompt_dropout``,
            ``prompt_init``, ``prompt_init_scale``, ``prompt_norm``, ``prompt_attn_mask``,
            ``bias_tune``, ``learnable_cls_token``, ``with_cp``, ``frozen_drop_path_rate``),
            and mmpretrain ``VisionTransformer`` arguments.
    """
    OUT_TYPES = VisionTransformer.OUT_TYPES | {'avg_prompts_patches'}

    def __init__(self, *args, **kwargs) -> None:
        options = PromptOptions.pop_from(kwargs)
        arch = kwargs.get('arch', args[0] if args else 'base')
        if isinstance(arch, str) and arch.lower() not in self.arch_zoo:
            raise ValueError(f'unknown arch {arch!r}; choose one of {sorted(self.arch_zoo)} '
                             'or pass a dict with embed_dims, num_layers, num_heads and '
                             'feedforward_channels')
        super().__init__(*args, **kwargs)
        if self.out_type == 'avg_prompts_patches' and not self.final_norm:
            print_log("DAVPTViT: out_type='avg_prompts_patches' with final_norm=False pools "
                      'tokens without a final norm (the authors pool the final-norm outputs)',
                      logger='current', level=logging.WARNING)
        for layer in self.layers:
            if layer.attn.v_shortcut or not isinstance(layer.ffn, FFN):
                raise ValueError('DAVPTViT supports the standard ViT block (FFN, no v_shortcut)')
        patch = self.patch_embed.projection.kernel_size
        self._init_prompts(
            num_layers=self.num_layers,
            embed_dims=self.embed_dims,
            patch_size=tuple(patch),
            num_prefix_tokens=self.num_extra_tokens,
            options=options)

    def _block_parts(self, layer: nn.Module) -> BlockParts:
        attn = layer.attn
        return BlockParts(
            norm1=layer.ln1,
            qkv_weight=attn.qkv.weight,
            qkv_bias=attn.qkv.bias,
            num_heads=attn.num_heads,
            proj=attn.proj,
            layer_scale=attn.gamma1,
            norm2=layer.ln2,
            ffn=layer.ffn,
            proj_bias_owner=attn.proj,
            fc2=layer.ffn.layers[1],
            fc1=layer.ffn.layers[0][0])

    def new_param_names(self) -> List[str]:
        """The prompts (and ``kv_bias``), plus ``ln2`` when ``out_type='avg_featmap'``.

        mmpretrain normalizes the mean of the patch tokens with a norm of its own (``ln2``) that
        a pre-training checkpoint (MAE's included) does not hold: it starts as the identity.
        """
        names = super().new_param_names()
        if self.out_type == 'avg_featmap':
            names += ['ln2.weight', 'ln2.bias']
        return names

    def _host_trainable_extras(self):
        norms = [getattr(self, 'ln2', None) if self.out_type == 'avg_featmap' else None,
                 self.pre_norm]
        return [m.bias for m in norms
                if m is not None and getattr(m, 'bias', None) is not None]

    def _host_part_tensors(self) -> Dict[str, Optional[torch.Tensor]]:
        final = getattr(self, 'ln1', None) if self.final_norm else None
        return dict(
            patch_embed_bias=self.patch_embed.projection.bias,
            final_norm_weight=getattr(final, 'weight', None),
            final_norm_bias=getattr(final, 'bias', None))

    def forward(self, x: torch.Tensor):
        batch = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.drop_after_pos(x)
        x = self.pre_norm(x)
        final_norm = self.ln1 if self.final_norm else None
        if self.out_type == 'avg_prompts_patches':
            outs = self.forward_blocks(x, patch_resolution, final_norm, self.out_indices,
                                       strip_prompts=False)
            # Every token but the prefix (CLS): the layer's prompts and the patches.
            return tuple(out[:, self.num_extra_tokens:].mean(dim=1) for out in outs)
        outs = self.forward_blocks(x, patch_resolution, final_norm, self.out_indices)
        return tuple(self._format_output(out, patch_resolution) for out in outs)
