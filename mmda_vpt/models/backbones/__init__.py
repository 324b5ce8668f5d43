from .davpt_vit import DAVPTViT
from .davpt_vit_seg import DAVPTViTSeg
from .prompted_vit_mixin import BlockParts, PromptedViTMixin, PromptTaps

__all__ = ['DAVPTViT', 'DAVPTViTSeg', 'PromptedViTMixin', 'PromptTaps', 'BlockParts']
