from .class_prompt_mapping_hook import ClassPromptMappingHook
from .labelled_pixel_check_hook import LabelledPixelCheckHook
from .prompt_metric_loss_hook import PromptMetricLossHook
from .trainable_checkpoint_hook import TrainableCheckpointHook

__all__ = ['ClassPromptMappingHook', 'LabelledPixelCheckHook', 'PromptMetricLossHook',
           'TrainableCheckpointHook']
