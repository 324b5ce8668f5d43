"""The DA-VPT hooks: the class-to-prompt map, the metric losses, trainable-only checkpoints and
label checks; registered in mmengine's HOOKS."""
from .class_prompt_mapping_hook import ClassPromptMappingHook
from .labelled_pixel_check_hook import LabelledPixelCheckHook
from .prompt_metric_loss_hook import PromptMetricLossHook
from .trainable_checkpoint_hook import TrainableCheckpointHook

__all__ = ['ClassPromptMappingHook', 'LabelledPixelCheckHook', 'PromptMetricLossHook',
           'TrainableCheckpointHook']
