"""Unit tests of mmda_vpt.checkpoints.checkpoint_errors: unreadable checkpoints fail in one line."""
import os
import os.path as osp
import tempfile
from unittest import TestCase

import torch
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import mmda_vpt  # noqa: F401  (installs the errors)
from mmda_vpt.checkpoints.checkpoint_errors import (UnreadableCheckpointError, install_checkpoint_errors,
                                              loadable_checkpoints)


class TestUnreadableCheckpoints(TestCase):

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.good = osp.join(self.tmp, 'good.pth')
        torch.save(dict(state_dict=dict(weight=torch.arange(5000.0))), self.good)
        with open(self.good, 'rb') as file:
            self.data = file.read()

    def tearDown(self):
        self._tmp.cleanup()

    def _write(self, name: str, data: bytes) -> str:
        path = osp.join(self.tmp, name)
        with open(path, 'wb') as file:
            file.write(data)
        return path

    def _assert_one_line(self, path: str, size: str, reason: str) -> None:
        for load in (_load_checkpoint, lambda p: load_checkpoint(torch.nn.Linear(1, 1), p)):
            with self.assertRaises(UnreadableCheckpointError) as caught:
                load(path)
            message = str(caught.exception)
            self.assertNotIn('\n', message)
            self.assertRegex(message, rf'^checkpoint {path} \({size}\) cannot be read: '
                             rf'{reason}[^;]*; expected a checkpoint written by torch\.save')
            self.assertNotIn('weights_only', message)
            self.assertTrue(caught.exception.__suppress_context__)
            self.assertEqual(caught.exception.filename, path)

    def test_truncated_zip(self):
        path = self._write('truncated.pth', self.data[:len(self.data) // 2])
        self._assert_one_line(path, f'{len(self.data) // 2:,} bytes',
                              'it is the beginning of a zip archive whose end is missing')

    def test_empty(self):
        self._assert_one_line(self._write('empty.pth', b''), '0 bytes', 'the file is empty')

    def test_garbage(self):
        path = self._write('garbage.pth', b'<html>not found</html>\n' * 3)
        self._assert_one_line(path, '69 bytes', r"it starts with b'<html>no', which is neither "
                              'a zip archive nor a pickle')

    def test_truncated_legacy_file(self):
        legacy = osp.join(self.tmp, 'legacy.pth')
        torch.save(dict(weight=torch.arange(5000.0)), legacy, _use_new_zipfile_serialization=False)
        with open(legacy, 'rb') as file:
            data = file.read()
        path = self._write('legacy_cut.pth', data[:len(data) // 2])
        self._assert_one_line(path, f'{len(data) // 2:,} bytes',
                              r'it is a legacy torch\.save file that ends early')

    def test_readable_checkpoints_unchanged(self):
        self.assertEqual(set(_load_checkpoint(self.good)), {'state_dict'})
        with self.assertRaisesRegex(FileNotFoundError, 'can not be found'):
            _load_checkpoint(osp.join(self.tmp, 'missing.pth'))

    def test_loadable_checkpoints(self):
        self._write('broken.pth', self.data[:100])
        older = osp.join(self.tmp, 'older.pth')
        torch.save(dict(state_dict={}), older)
        os.utime(older, (1, 1))
        self.assertEqual(loadable_checkpoints(self.tmp), [self.good, older])
        self.assertEqual(loadable_checkpoints(self.tmp, exclude=self.good), [older])

    def test_installed_once(self):
        loader, resume = CheckpointLoader._schemes[''], Runner.resume
        install_checkpoint_errors()
        mmda_vpt.apply_compat_patches()
        self.assertIs(CheckpointLoader._schemes[''], loader)
        self.assertIs(Runner.resume, resume)
        self.assertEqual(loader.__name__, 'load_from_local')
