"""The DA-VPT hooks: the class-to-prompt map, the metric losses, trainable-only checkpoints and
label checks, the pictures for the visualizer; registered in mmengine's HOOKS."""
from .class_prompt_mapping_hook import ClassPromptMappingHook
from .labelled_pixel_check_hook import LabelledPixelCheckHook
from .prompt_metric_loss_hook import PromptMetricLossHook
from .prompt_visualization_hook import PromptVisualizationHook
from .trainable_checkpoint_hook import TrainableCheckpointHook

__all__ = ['ClassPromptMappingHook', 'LabelledPixelCheckHook', 'PromptMetricLossHook',
           'PromptVisualizationHook', 'TrainableCheckpointHook']
