"""The training-loop side of DA-VPT: its hooks and its learning-rate schedule."""
from .hooks import (ClassPromptMappingHook, PromptMetricLossHook, PromptVisualizationHook,
                    TrainableCheckpointHook)
from .schedulers import WarmupCosineLR

__all__ = ['ClassPromptMappingHook', 'PromptMetricLossHook', 'PromptVisualizationHook',
           'TrainableCheckpointHook', 'WarmupCosineLR']
