from .hooks import (ClassPromptMappingHook, PromptMetricLossHook, TrainableCheckpointHook,
                    TrialReportHook)

__all__ = ['ClassPromptMappingHook', 'PromptMetricLossHook', 'TrainableCheckpointHook',
           'TrialReportHook']
