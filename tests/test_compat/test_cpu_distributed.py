"""Tests of mmda_vpt.compat.cpu_distributed: mmengine's launchers and DDP wrapper without CUDA;
unchanged with CUDA."""
import os
import subprocess
import sys
from unittest import TestCase, mock

import torch
from mmengine.dist import utils as dist_utils
from mmengine.model import MMDistributedDataParallel

import mmda_vpt  # noqa: F401  (applies the compatibility patches)
from tests.utils import REPO, SUBPROCESS_TIMEOUT, cpu_process_group, free_port

# A one-process CPU run through mmengine's launcher; the checker, registered before the launch,
# runs after everything the launch registered with atexit (last in, first out).
EXIT_SCRIPT = '''
import atexit, sys
import torch.distributed as dist
import mmda_vpt
from mmengine.dist import init_dist
atexit.register(lambda: print('group still initialized:', dist.is_initialized()))
init_dist('pytorch', backend='nccl')
if sys.argv[1] == 'raise':
    raise RuntimeError('a rank failed')
'''


class TestCpuDistributed(TestCase):
    """Distributed launchers and the DDP wrapper without CUDA; unchanged with CUDA."""

    def _env(self):
        return mock.patch.dict(
            os.environ, dict(RANK='0', LOCAL_RANK='1', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                             MASTER_PORT=str(free_port())))

    def test_launcher_without_cuda(self):
        set_device = torch.cuda.set_device
        with self._env(), mock.patch.object(torch.cuda, 'is_available', return_value=False), \
                mock.patch.object(dist_utils.mp, 'set_start_method'), \
                mock.patch('torch.distributed.init_process_group') as init_pg:
            dist_utils.init_dist('pytorch', backend='nccl')
        init_pg.assert_called_once_with(backend='gloo')
        self.assertIs(torch.cuda.set_device, set_device)

    def test_launcher_with_cuda_unchanged(self):
        with self._env(), mock.patch.object(torch.cuda, 'is_available', return_value=True), \
                mock.patch.object(dist_utils.mp, 'set_start_method'), \
                mock.patch.object(torch.cuda, 'set_device') as set_device, \
                mock.patch('torch.distributed.init_process_group') as init_pg:
            dist_utils.init_dist('pytorch', backend='nccl')
        set_device.assert_called_once_with(1)
        init_pg.assert_called_once_with(backend='nccl')

    def test_ddp_of_cpu_module(self):
        model = torch.nn.Linear(3, 2)
        with cpu_process_group():
            # What Runner.wrap_model does: device_ids=[LOCAL_RANK].
            ddp = MMDistributedDataParallel(module=model, device_ids=[0])
            self.assertIsNone(ddp.device_ids)
            ddp(torch.ones(4, 3)).sum().backward()
            self.assertIsNotNone(model.weight.grad)
            stock_init = MMDistributedDataParallel.__init__.__wrapped__
            with self.assertRaisesRegex(ValueError, 'device_ids'):
                stock_init(
                    object.__new__(MMDistributedDataParallel), module=model, device_ids=[0])

    def _exit(self, how: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES='', RANK='0', LOCAL_RANK='0',
                   WORLD_SIZE='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
        env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
        return subprocess.run([sys.executable, '-c', EXIT_SCRIPT, how], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)

    def test_process_group_closed_at_exit(self):
        # Left open, a gloo rank may abort at exit ("terminate called without an active
        # exception"); the CPU launch waits for every rank and destroys the group.
        done = self._exit('return')
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertIn('group still initialized: False', done.stdout)
        # After an uncaught exception the other ranks are not coming: no barrier, no hang.
        failed = self._exit('raise')
        self.assertEqual(failed.returncode, 1, failed.stderr[-3000:])
        self.assertIn('RuntimeError: a rank failed', failed.stderr)
        self.assertIn('group still initialized: True', failed.stdout)
