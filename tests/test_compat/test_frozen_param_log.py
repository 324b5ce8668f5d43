"""Tests of mmda_vpt.compat.frozen_param_log: mmengine's warning per frozen parameter tensor
("... is skipped since its requires_grad=False") becomes one summary line."""
import glob
import logging
import os.path as osp
import re
import tempfile
from unittest import TestCase

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.runner import Runner

import mmda_vpt  # noqa: F401  (applies the patches)
from mmda_vpt.compat.frozen_param_log import patch_frozen_param_log
from tests.utils import REPO

DIGITS = osp.join(REPO, 'tests', 'data', 'configs', 'toy_davpt_digits.py')
SKIPPED = 'is skipped since its requires_grad=False'
SUMMARY = re.compile(r'(\d+) frozen parameter tensors \(requires_grad=False\) are left out of '
                     r'the optimizer')


def _frozen(model: torch.nn.Module) -> int:
    return sum(not p.requires_grad for p in model.parameters())


class TestConstructor(TestCase):

    def test_one_line(self):
        model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3),
                                    torch.nn.Linear(3, 1))
        for param in model[:2].parameters():
            param.requires_grad_(False)
        constructor = DefaultOptimWrapperConstructor(
            dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4)),
            dict(norm_decay_mult=0.0))
        with self.assertLogs(MMLogger.get_current_instance(), logging.INFO) as logs:
            wrapper = constructor(model)
        (line, ) = [line for line in logs.output if 'frozen' in line or SKIPPED in line]
        self.assertEqual(SUMMARY.search(line).group(1), '4')
        trained = [p for group in wrapper.optimizer.param_groups for p in group['params']]
        self.assertEqual(len(trained), 2)
        # Nothing is filtered outside the constructor.
        with self.assertLogs(MMLogger.get_current_instance(), logging.WARNING) as logs:
            MMLogger.get_current_instance().warning(f'x {SKIPPED}')
        self.assertEqual(len(logs.output), 1)

    def test_idempotent(self):
        call = DefaultOptimWrapperConstructor.__call__
        patch_frozen_param_log()
        self.assertIs(DefaultOptimWrapperConstructor.__call__, call)


@pytest.mark.slow
class TestTrainingLog(TestCase):

    def test_runner_logs_one_summary(self):
        cfg = Config.fromfile(DIGITS)
        cfg.optim_wrapper.paramwise_cfg = dict(norm_decay_mult=0.0)
        cfg.train_dataloader.dataset.indices = (0, 60)
        cfg.train_cfg.max_epochs = 1
        # A logger of its own: one made by an earlier runner in the same second would be reused.
        cfg.experiment_name = 'frozen_param_log'
        with tempfile.TemporaryDirectory() as tmp:
            cfg.work_dir = tmp
            runner = Runner.from_cfg(cfg)
            runner.train()
            (log, ) = glob.glob(osp.join(tmp, '*', '*.log'))
            with open(log) as f:
                text = f.read()
        self.assertEqual(text.count(SKIPPED), 0)
        counts = SUMMARY.findall(text)
        self.assertEqual(counts, [str(_frozen(runner.model))])
        self.assertGreater(int(counts[0]), 10)
