from .hooks import ClassPromptMappingHook, PromptMetricLossHook, TrainableCheckpointHook

__all__ = ['ClassPromptMappingHook', 'PromptMetricLossHook', 'TrainableCheckpointHook']
