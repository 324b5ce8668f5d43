"""Tests of mmda_vpt.compat.checkpoint_globals: resume under torch's weights_only default, with
weights_only still on."""
import os
import os.path as osp
import pickle
import tempfile
from unittest import TestCase

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import load_checkpoint

import mmda_vpt  # noqa: F401  (applies the compatibility patches)
from mmda_vpt.compat import checkpoint_safe_globals


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
    """Resume under torch's weights_only default, with weights_only still on."""

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
