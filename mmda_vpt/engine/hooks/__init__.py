from .class_prompt_mapping_hook import ClassPromptMappingHook
from .prompt_metric_loss_hook import PromptMetricLossHook
from .trainable_checkpoint_hook import TrainableCheckpointHook

__all__ = ['ClassPromptMappingHook', 'PromptMetricLossHook', 'TrainableCheckpointHook']
