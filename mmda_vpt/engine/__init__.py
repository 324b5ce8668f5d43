from .hooks import ClassPromptMappingHook, PromptMetricLossHook, TrainableCheckpointHook
from .schedulers import WarmupCosineLR

__all__ = ['ClassPromptMappingHook', 'PromptMetricLossHook', 'TrainableCheckpointHook',
           'WarmupCosineLR']
