"""The DA-VPT models: the prompted ViT backbones and the prompt metric loss, in both hosts."""
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS

from .backbones import DAVPTViT, DAVPTViTSeg, PromptedViTMixin, PromptTaps
from .losses import PromptProxyAnchorLoss

# The loss serves both hosts; each backbone registered itself in its own host's registry.
for _registry in (PRETRAIN_MODELS, SEG_MODELS):
    _registry.register_module(module=PromptProxyAnchorLoss, force=True)

__all__ = ['DAVPTViT', 'DAVPTViTSeg', 'PromptedViTMixin', 'PromptTaps', 'PromptProxyAnchorLoss']
