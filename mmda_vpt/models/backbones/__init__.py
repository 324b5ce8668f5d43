"""The DA-VPT backbones (``DAVPTViT`` for mmpretrain and for mmseg) and the concepts they share."""
from .attention_recorder import AttentionRecorder
from .bias_tuning import authors_bias_parts
from .block_parts import BlockParts
from .davpt_vit import DAVPTViT
from .davpt_vit_seg import DAVPTViTSeg
from .prompt_options import BIAS_PARTS, PromptOptions
from .prompted_vit_mixin import PromptedViTMixin
from .prompts import DeepPrompts
from .taps import LayerTaps, PromptTaps

__all__ = [
    'DAVPTViT', 'DAVPTViTSeg', 'PromptedViTMixin', 'PromptTaps', 'BlockParts', 'PromptOptions',
    'DeepPrompts', 'LayerTaps', 'AttentionRecorder', 'BIAS_PARTS', 'authors_bias_parts'
]
