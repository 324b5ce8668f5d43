"""Tests of mmda_vpt.compat.cpu_sync_bn: SyncBN layers of a CPU module become BatchNorm when a
distributed run without CUDA wraps it (tools/dist_train.sh with mmseg's SyncBN heads)."""
import logging
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
from unittest import TestCase, mock

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.model import MMDistributedDataParallel

import mmda_vpt  # noqa: F401  (applies the patches)
from mmda_vpt.compat.cpu_sync_bn import patch_cpu_sync_bn, revert_cpu_sync_bn
from tests.utils import DIST_TRAIN, REPO, SUBPROCESS_TIMEOUT, cpu_process_group

CONVERTED = 'SyncBatchNorm layer(s) are converted to BatchNorm for this CPU distributed run'


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.SyncBatchNorm(4),
                               torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1),
                               torch.nn.SyncBatchNorm(2))


class TestRevert(TestCase):

    def test_without_cuda(self):
        net = _net()
        weight = net[1].weight
        with mock.patch.object(torch.cuda, 'is_available', return_value=False), \
                self.assertLogs(MMLogger.get_current_instance(), logging.WARNING) as logs:
            out = revert_cpu_sync_bn(net)
        self.assertIs(out, net)
        self.assertFalse(any(isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules()))
        self.assertIsInstance(net[1], torch.nn.modules.batchnorm._BatchNorm)
        self.assertIs(net[1].weight, weight)  # the same parameters and statistics
        (line, ) = logs.output
        self.assertIn(f'2 {CONVERTED}', line)

    def test_unchanged_with_cuda_or_without_sync_bn(self):
        net = _net()
        with mock.patch.object(torch.cuda, 'is_available', return_value=True):
            self.assertIs(revert_cpu_sync_bn(net), net)
        self.assertIsInstance(net[1], torch.nn.SyncBatchNorm)
        plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
        with mock.patch.object(torch.cuda, 'is_available', return_value=False), \
                self.assertNoLogs(MMLogger.get_current_instance(), logging.WARNING):
            self.assertIs(revert_cpu_sync_bn(plain), plain)

    def test_ddp_of_cpu_module_with_sync_bn(self):
        net = _net()
        with cpu_process_group():
            # What Runner.wrap_model does with a model built from norm_cfg=dict(type='SyncBN').
            ddp = MMDistributedDataParallel(module=net, device_ids=[0])
            ddp(torch.ones(2, 3, 4, 4)).sum().backward()
            self.assertIsNotNone(net[1].weight.grad)
            stock = torch.nn.parallel.DistributedDataParallel.__init__.__wrapped__
            with self.assertRaisesRegex(ValueError, 'SyncBatchNorm layers only work with GPU'):
                stock(object.__new__(torch.nn.parallel.DistributedDataParallel), _net())

    def test_idempotent(self):
        init = torch.nn.parallel.DistributedDataParallel.__init__
        patch_cpu_sync_bn()
        self.assertIs(torch.nn.parallel.DistributedDataParallel.__init__, init)


@pytest.mark.slow
class TestDistTrainSegmentation(TestCase):

    def test_custom_seg_config_on_two_cpu_processes(self):
        # The own-data segmentation config (SyncBN heads), shrunk, under tools/dist_train.sh 2.
        from tests.test_configs.test_custom_configs import (shrunk_config, write_base_weights,
                                                            write_seg_tree)
        with tempfile.TemporaryDirectory() as root:
            data, base = osp.join(root, 'data'), osp.join(root, 'base.pth')
            write_seg_tree(data)
            write_base_weights('seg', base)
            cfg = shrunk_config('seg', data, base, osp.join(root, 'work'))
            self.assertEqual(cfg.model.decode_head.norm_cfg.type, 'SyncBN')
            config = osp.join(root, 'config.py')
            cfg.dump(config)
            env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES='',
                       OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
            env.pop('PORT', None)
            env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
            run = subprocess.run(['bash', DIST_TRAIN, config, '2'], cwd=root, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=SUBPROCESS_TIMEOUT)
            self.assertEqual(run.returncode, 0, run.stdout[-6000:])
            self.assertIn('Distributed training: True', run.stdout)
            # The SyncBN layers of the decode head and the 3 auxiliary heads; rank 0 logs.
            self.assertEqual(len(re.findall('WARNING - No CUDA device is available: 10 '
                                            + re.escape(CONVERTED), run.stdout)), 1)
            self.assertNotIn('SyncBatchNorm layers only work with GPU', run.stdout)
            self.assertIn('Iter(train) [3/3]', run.stdout)
            self.assertRegex(run.stdout, r'Iter\(val\) \[\d+/\d+\] +aAcc: ')
            self.assertTrue(osp.exists(osp.join(root, 'work', 'iter_3.pth')))
