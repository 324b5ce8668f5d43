"""The pictures of DA-VPT's moving parts, drawn once for every place that shows them.

:class:`~mmda_vpt.engine.hooks.PromptVisualizationHook` (any mmengine visualizer backend),
``tools/analysis/show_attention.py`` and the demo draw with these functions, so the same run
gives the same picture wherever it is looked at.
"""
from .attention_capture import capture_attention
from .attention_figure import AttentionRow, attention_rows, draw_attention
from .class_prompt_map_figure import draw_class_prompt_map
from .figure import save_image

__all__ = [
    'AttentionRow', 'attention_rows', 'capture_attention', 'draw_attention',
    'draw_class_prompt_map', 'save_image'
]
