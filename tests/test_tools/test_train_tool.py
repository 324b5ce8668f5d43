"""Tests of tools/train.py, tools/test.py, tools/dist_train.sh and tools/dist_test.sh.

Their options are tested in process in tests/test_apis/test_runner.py. These tests train the
toy classifier of tests/data/configs/toy_cls.py in subprocesses, exactly as a user runs the
tools: one straight 2-epoch run shared by the tests, a run resumed from its epoch-1 checkpoint,
a 2-process torchrun run on the CPU and a test.py run.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
from unittest import TestCase

import pytest
import torch

import mmda_vpt  # noqa: F401  (applies the compatibility patches)
from tests.utils import (DIST_TEST, DIST_TRAIN, REPO, SUBPROCESS_TIMEOUT, TEST, TOY_CONFIG, TRAIN,
                         free_port, write_toy_images)


@pytest.mark.slow
class TestToolsEndToEnd(TestCase):
    """The tools in subprocesses on the toy classifier: resume, torchrun on the CPU, test."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.root = cls._tmp.name
        write_toy_images(cls.root)
        # The reference: 2 epochs straight, global batch 8 (2 iterations per epoch).
        cls.straight = cls._run([sys.executable, TRAIN, TOY_CONFIG, '--work-dir', 'straight',
                                 '--cfg-options', 'train_dataloader.batch_size=8'])

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    @classmethod
    def _run(cls, command, **env) -> subprocess.CompletedProcess:
        # The CPU path is under test (and keeps the runs comparable), also on a CUDA machine.
        environ = dict(
            os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **env)
        environ['PYTHONPATH'] = os.pathsep.join(
            path for path in (REPO, os.environ.get('PYTHONPATH')) if path)
        result = subprocess.run(
            command, cwd=cls.root, env=environ, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=SUBPROCESS_TIMEOUT)
        if result.returncode != 0:
            raise AssertionError(f'{command} exited with {result.returncode}:\n'
                                 f'{result.stdout[-6000:]}')
        return result

    def _checkpoint(self, work_dir: str, epoch: int) -> dict:
        return torch.load(osp.join(self.root, work_dir, f'epoch_{epoch}.pth'))

    def test_resume_reproduces_straight_run(self):
        resumed = self._run([
            sys.executable, TRAIN, TOY_CONFIG, '--work-dir', 'resumed', '--resume',
            osp.join('straight', 'epoch_1.pth'), '--cfg-options',
            'train_dataloader.batch_size=8'
        ])
        self.assertIn('resumed epoch: 1, iter: 2', resumed.stdout)
        self.assertFalse(osp.exists(osp.join(self.root, 'resumed', 'epoch_1.pth')))
        straight, again = self._checkpoint('straight', 2), self._checkpoint('resumed', 2)
        self.assertEqual(straight['meta']['iter'], again['meta']['iter'])
        self.assertEqual(set(straight['state_dict']), set(again['state_dict']))
        for name, weight in straight['state_dict'].items():
            assert torch.equal(weight, again['state_dict'][name]), name
        for index, state in straight['optimizer']['state'].items():
            assert torch.equal(state['momentum_buffer'],
                               again['optimizer']['state'][index]['momentum_buffer']), index
        self.assertEqual(straight['param_schedulers'], again['param_schedulers'])
        # The first epoch changed the weights, so equality is not trivial.
        first = self._checkpoint('straight', 1)['state_dict']
        self.assertFalse(
            torch.equal(first['head.fc.weight'], straight['state_dict']['head.fc.weight']))

    def test_torchrun_two_cpu_processes(self):
        run = self._run(['bash', DIST_TRAIN, TOY_CONFIG, '2', '--work-dir', 'dist'],
                        PYTHON=sys.executable, PORT=str(free_port()))
        self.assertIn('Distributed training: True', run.stdout)
        self.assertIn('GPU number: 2', run.stdout)
        self.assertEqual(run.stdout.count('the distributed backend "nccl" is replaced by "gloo"'),
                         2)
        # 16 training images, batch 4 per process: 2 iterations per epoch with 2 processes.
        self.assertIn('Epoch(train) [2][2/2]', run.stdout)
        self.assertNotIn('Epoch(train) [2][3/', run.stdout)
        # DDP averages the gradients of both ranks, so 2 x batch 4 trains like one batch of 8
        # (the straight run); a rank that did not train would change the result.
        dist, straight = self._checkpoint('dist', 2), self._checkpoint('straight', 2)
        for name, weight in straight['state_dict'].items():
            torch.testing.assert_close(dist['state_dict'][name], weight)

    def test_launchers_without_an_active_environment(self):
        # As the README writes them, right after `make setup`: no activated environment, no
        # PYTHON, and a PATH whose python (if any) lacks torch. The launchers use .venv.
        if not osp.exists(osp.join(REPO, '.venv', 'bin', 'python')):
            self.skipTest('no .venv: the launchers fall back to python from PATH')
        environ = {k: v for k, v in os.environ.items()
                   if k not in ('PYTHON', 'VIRTUAL_ENV', 'CONDA_PREFIX', 'PYTHONPATH')}
        environ.update(PATH='/usr/bin:/bin', CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
                       MKL_NUM_THREADS='1', PORT=str(free_port()))
        commands = [
            ['bash', DIST_TRAIN, TOY_CONFIG, '1', '--work-dir', 'plain_shell', '--cfg-options',
             'train_cfg.max_epochs=1'],
            ['bash', DIST_TEST, TOY_CONFIG, osp.join('plain_shell', 'epoch_1.pth'), '1',
             '--work-dir', 'plain_shell_test'],
        ]
        outputs = []
        for command in commands:
            result = subprocess.run(command, cwd=self.root, env=environ, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True,
                                    timeout=SUBPROCESS_TIMEOUT)
            self.assertEqual(result.returncode, 0, result.stdout[-6000:])
            outputs.append(result.stdout)
        self.assertIn('Epoch(train) [1][4/4]', outputs[0])
        self.assertRegex(outputs[1], r'Epoch\(test\) \[\d+/\d+\] +accuracy/top1: ')

    def test_test_tool(self):
        out = osp.join(self.root, 'metrics.json')
        run = self._run([
            sys.executable, TEST, TOY_CONFIG, osp.join('straight', 'epoch_2.pth'),
            '--work-dir', 'test', '--out', out, '--out-item', 'metrics'
        ])
        self.assertIn('Load checkpoint from straight/epoch_2.pth', run.stdout)
        with open(out) as f:
            metrics = json.load(f)
        self.assertEqual(set(metrics), {'accuracy/top1'})
        # The test split is the validation split: the same accuracy as the last validation.
        last_val = re.findall(r'Epoch\(val\) \[2\]\S* +accuracy/top1: ([0-9.]+)',
                              self.straight.stdout)
        self.assertEqual(len(last_val), 1)
        self.assertAlmostEqual(metrics['accuracy/top1'], float(last_val[0]), places=3)
