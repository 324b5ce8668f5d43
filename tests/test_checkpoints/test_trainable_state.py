"""Tests of mmda_vpt.checkpoints.trainable_state and unwrap_model: one parameter count, logged in one format."""
import logging
from unittest import TestCase

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseTTAModel

import mmda_vpt  # noqa: F401
from mmda_vpt.checkpoints import count_params, log_trainable_params
from mmda_vpt.utils import unwrap_model
from tests.test_models.test_backbones.test_davpt_vit import build_pretrain


class _Records(logging.Handler):

    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class _TTA(BaseTTAModel):

    def merge_preds(self, data_samples_list):
        return data_samples_list


def _logged(fn) -> list:
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    try:
        fn()
    finally:
        logger.removeHandler(handler)
    return handler.messages


class TestParams(TestCase):

    def test_unwrap_model(self):
        model = nn.Linear(3, 2)
        # mmengine's model wrappers (here DataParallel, which runs on the CPU) are unwrapped.
        self.assertIs(unwrap_model(nn.DataParallel(model)), model)
        self.assertIs(unwrap_model(model), model)
        # The test-time-augmentation model (tools/test.py --tta), wrapped or not.
        model.test_step = lambda data: data
        self.assertIs(unwrap_model(_TTA(model)), model)
        self.assertIs(unwrap_model(nn.DataParallel(_TTA(model))), model)
        holder = nn.Module()
        holder.module = model  # a `module` attribute alone does not make a wrapper
        self.assertIs(unwrap_model(holder), holder)

    def test_count_and_log(self):
        model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
        model[0].weight.requires_grad = False
        self.assertEqual(count_params(nn.DataParallel(model)), (5, 11))
        messages = _logged(lambda: [log_trainable_params(model) for _ in range(2)])
        self.assertEqual(messages, ['Sequential: 5 trainable of 11 parameters (45.455%, 0.000M)'])
        messages = _logged(lambda: log_trainable_params(model, details='more', once=False))
        self.assertEqual(messages, ['Sequential: 5 trainable of 11 parameters (45.455%, 0.000M)'
                                    '; more'])

    def test_backbone_summary(self):
        backbone = None

        def build():
            nonlocal backbone
            backbone = build_pretrain(num_prompts=2)

        messages = _logged(build)
        trainable, total = backbone.param_summary()
        self.assertEqual((trainable, total), count_params(backbone))
        self.assertEqual(trainable, sum(p.numel() for p in backbone.parameters()
                                        if p.requires_grad))
        line = next(m for m in messages if 'trainable of' in m)
        self.assertTrue(line.startswith(f'DAVPTViT: {trainable:,} trainable of {total:,} '))
        self.assertIn('; prompts per layer', line)
