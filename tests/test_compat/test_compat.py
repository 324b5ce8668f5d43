"""Tests of mmda_vpt.compat: the checkpoint allowlist, CPU distributed launching and
the package lookups."""
import os
import os.path as osp
import pickle
import subprocess
import sys
import tempfile
from unittest import TestCase, mock

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import utils as dist_utils
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import load_checkpoint

import mmda_vpt  # noqa: F401  (applies the compatibility patches)
from mmda_vpt.compat import apply_compat_patches, checkpoint_safe_globals
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


class Unpicklable:
    """A custom class a weights_only load must refuse to rebuild."""

    def __init__(self, value: int) -> None:
        self.value = value


class RunsCommand:
    """Pickles as a call of os.system: loading it must not run the command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class ReachesPrivateAttribute:
    """Pickles as getattr(HistoryBuffer, '__init__'), outside what checkpoints need."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


class TestCheckpointAllowlist(TestCase):
    """(a) resume under torch's weights_only default, with weights_only still on."""

    def _save(self, obj, directory: str) -> str:
        path = osp.join(directory, 'ckpt.pth')
        torch.save(obj, path)
        return path

    def test_message_hub_round_trip(self):
        hub = MessageHub('test_compat_round_trip')
        for step in range(3):
            hub.update_scalar('train/loss', 1.0 / (step + 1))
        hub.update_info('epoch', np.int64(3))
        ckpt = dict(
            state_dict=dict(weight=torch.arange(4.)),
            message_hub=hub.state_dict(),
            meta=dict(dataset_meta=dict(classes=(np.str_('a'), 'b')), score=np.float32(0.5)))
        with tempfile.TemporaryDirectory() as tmp:
            path = self._save(ckpt, tmp)
            loaded = torch.load(path)  # torch's default: weights_only=True
        buffer = loaded['message_hub']['log_scalars']['train/loss']
        self.assertIsInstance(buffer, HistoryBuffer)
        assert np.allclose(buffer.data[0], [1.0, 0.5, 1 / 3])
        self.assertAlmostEqual(float(buffer.mean()), (1.0 + 0.5 + 1 / 3) / 3)
        self.assertIs(buffer._statistics_methods['mean'], HistoryBuffer.mean)
        self.assertEqual(loaded['message_hub']['runtime_info']['epoch'], 3)
        self.assertEqual(loaded['meta']['score'], np.float32(0.5))
        assert torch.equal(loaded['state_dict']['weight'], torch.arange(4.))

    def test_arbitrary_object_refused(self):
        model = torch.nn.Linear(2, 2)
        with tempfile.TemporaryDirectory() as tmp:
            path = self._save(dict(state_dict=model.state_dict(), extra=Unpicklable(1)), tmp)
            with self.assertRaisesRegex(pickle.UnpicklingError,
                                        r'Weights only load failed(.|\n)*Unpicklable'):
                load_checkpoint(model, path)

    def test_code_execution_refused(self):
        model = torch.nn.Linear(2, 2)
        with tempfile.TemporaryDirectory() as tmp:
            marker = osp.join(tmp, 'executed')
            path = self._save(dict(state_dict=model.state_dict(), x=RunsCommand(marker)), tmp)
            with self.assertRaisesRegex(pickle.UnpicklingError, 'Weights only load failed'):
                load_checkpoint(model, path)
            self.assertFalse(osp.exists(marker))

    def test_getattr_limited_to_history_buffer_methods(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = self._save(dict(x=ReachesPrivateAttribute()), tmp)
            with self.assertRaisesRegex(pickle.UnpicklingError,
                                        'only the public methods of '
                                        'mmengine.logging.HistoryBuffer'):
                torch.load(path)

    def test_allowlist_is_specific(self):
        names = set()
        for entry in checkpoint_safe_globals():
            names.add(entry[1] if isinstance(entry, tuple) else entry.__qualname__)
        self.assertIn('HistoryBuffer', names)
        self.assertIn('builtins.getattr', names)
        self.assertNotIn(getattr, checkpoint_safe_globals())
        self.assertNotIn(type(np.dtype(object)), checkpoint_safe_globals())


class TestCpuDistributed(TestCase):
    """(b) distributed launchers and the DDP wrapper without CUDA; unchanged with CUDA."""

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

    def test_idempotent(self):
        launcher = dist_utils._init_dist_pytorch
        ddp_init = MMDistributedDataParallel.__init__
        apply_compat_patches()
        apply_compat_patches()
        self.assertIs(dist_utils._init_dist_pytorch, launcher)
        self.assertIs(MMDistributedDataParallel.__init__, ddp_init)
        self.assertFalse(hasattr(launcher.__wrapped__, '__wrapped__'))
        self.assertFalse(hasattr(ddp_init.__wrapped__, '__wrapped__'))


class TestPackageLookups(TestCase):
    """mmengine's `mmpretrain::` / `mmseg::` config paths, with or without pkg_resources."""

    def test_installed_path(self):
        import mmpretrain
        from mmengine.config import config as config_module
        self.assertTrue(config_module.is_installed('mmpretrain'))
        self.assertFalse(config_module.is_installed('mmda_vpt_no_such_package'))
        self.assertEqual(
            osp.realpath(config_module.get_installed_path('mmpretrain')),
            osp.realpath(osp.dirname(mmpretrain.__file__)))

    def test_scoped_base_config(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'seg.py')
            with open(path, 'w') as f:
                f.write("_base_ = 'mmseg::_base_/default_runtime.py'\n")
            cfg = Config.fromfile(path)
        self.assertEqual(cfg.default_scope, 'mmseg')
