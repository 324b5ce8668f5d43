"""Checkpoints on a user's path through tools/train.py and tools/test.py: base weights checked
by content, unreadable checkpoints and a failed ``--resume`` in one line, a missing pre-trained
file naming its converter.

One tiny DA-VPT classifier (the toy classifier of tests/data/configs/toy_cls.py with a 2-layer
``DAVPTViT`` loading a base file, and ``TrainableCheckpointHook``) is trained for 2 epochs by
``tools/train.py`` in a subprocess; the tests then load its trainable-only checkpoints with the
tools, in subprocesses where the message a user sees (the last line of the output) matters, in
process otherwise.
"""
import glob
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys
import tempfile
from typing import List
from unittest import TestCase, mock

import pytest
import torch
from mmengine.config import Config

import mmda_vpt  # noqa: F401
from mmda_vpt.apis import (build_test_parser, build_train_parser, merge_test_args,
                           merge_train_args, run_test, run_train)
from mmda_vpt.checkpoints.base_weights import (BASE_WEIGHTS_KEY, FINGERPRINT,
                                               PRETRAINED_DIR_ENV, decode_base_weights,
                                               encode_base_weights, weights_fingerprint)
from mmda_vpt.checkpoints.checkpoint_errors import UnreadableCheckpointError
from tests.utils import (REPO, SUBPROCESS_TIMEOUT, TEST, TOY_CONFIG, TRAIN,
                         missing_augreg_message, tiny_vit_weights, write_toy_images)

pytestmark = pytest.mark.slow  # subprocesses and runners

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def toy_config(base: str, data_root: str) -> str:
    """The text of the tiny DA-VPT config: the toy classifier with a DAVPTViT loading ``base``."""
    return f'''_base_ = {TOY_CONFIG!r}
model = dict(backbone=dict(
    _delete_=True, type='DAVPTViT', arch={ARCH!r}, img_size=32, patch_size=8, num_prompts=2,
    norm_cfg=dict(type='LN', eps=1e-6),
    init_cfg=dict(type='Pretrained', checkpoint={base!r})))
custom_hooks = [dict(type='TrainableCheckpointHook')]
train_dataloader = dict(dataset=dict(data_root={data_root!r}))
val_dataloader = dict(dataset=dict(data_root={data_root!r}))
test_dataloader = dict(dataset=dict(data_root={data_root!r}))
'''


def host_weights(seed: int) -> dict:
    """A tiny mmpretrain ViT's weights drawn with ``seed`` (a converted base checkpoint)."""
    return tiny_vit_weights(seed, ARCH, img_size=32)


def last_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


def as_train_tool(*argv: str) -> None:
    """What ``tools/train.py *argv`` runs, in process."""
    args = build_train_parser().parse_args(argv)
    run_train(merge_train_args(Config.fromfile(args.config), args))


def as_test_tool(*argv: str) -> dict:
    """What ``tools/test.py *argv`` runs, in process."""
    args = build_test_parser().parse_args(argv)
    return run_test(merge_test_args(Config.fromfile(args.config), args), args.out, args.out_item)


class TestCheckpointsThroughTools(TestCase):

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.root = cls._tmp.name
        write_toy_images(cls.root)
        cls.base = osp.join(cls.root, 'checkpoints', 'base.pth')
        os.makedirs(osp.dirname(cls.base))
        torch.save(host_weights(seed=1), cls.base)
        cls.config = osp.join(cls.root, 'davpt_toy.py')
        with open(cls.config, 'w') as file:
            file.write(toy_config(cls.base, osp.join(cls.root, 'data', 'toy_cls')))
        cls.work = osp.join(cls.root, 'work')
        cls._run([sys.executable, TRAIN, cls.config, '--work-dir', cls.work], check=True)
        cls.checkpoint = osp.join(cls.work, 'epoch_2.pth')
        cls.reference = cls._scores(cls.checkpoint, 'reference')

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def setUp(self):
        env = {k: v for k, v in os.environ.items() if k != PRETRAINED_DIR_ENV}
        patcher = mock.patch.dict(os.environ, env, clear=True)
        patcher.start()
        self.addCleanup(patcher.stop)

    @classmethod
    def _run(cls, command: List[str], check: bool = False) -> subprocess.CompletedProcess:
        environ = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
        environ.pop(PRETRAINED_DIR_ENV, None)
        environ['PYTHONPATH'] = os.pathsep.join(
            path for path in (REPO, os.environ.get('PYTHONPATH')) if path)
        result = subprocess.run(command, cwd=cls.root, env=environ, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=SUBPROCESS_TIMEOUT)
        if check and result.returncode != 0:
            raise AssertionError(f'{command} exited with {result.returncode}:\n'
                                 f'{result.stdout[-6000:]}')
        return result

    @classmethod
    def _scores(cls, checkpoint: str, name: str) -> torch.Tensor:
        """The test split's scores of ``checkpoint`` through tools/test.py (in process)."""
        out = osp.join(cls.root, f'{name}.pkl')
        as_test_tool(cls.config, checkpoint, '--work-dir', osp.join(cls.root, name), '--out',
                     out)
        with open(out, 'rb') as file:
            return torch.stack([torch.as_tensor(r['pred_score']) for r in pickle.load(file)])

    def _replace_base(self, weights: dict) -> None:
        """Put ``weights`` at the base path for this test; the original comes back after it."""
        shutil.copy(self.base, self.base + '.orig')
        self.addCleanup(shutil.move, self.base + '.orig', self.base)
        torch.save(weights, self.base)

    def test_trained_checkpoint_records_the_fingerprint(self):
        entry = torch.load(self.checkpoint)['state_dict'][f'backbone.{BASE_WEIGHTS_KEY}']
        pointer = decode_base_weights(entry)
        self.assertEqual(pointer['path'], self.base)
        self.assertEqual(pointer[FINGERPRINT], weights_fingerprint(torch.load(self.base)))

    def test_replaced_base_refused(self):
        expected = weights_fingerprint(torch.load(self.base))
        other = host_weights(seed=2)  # the same shapes, another draw
        self._replace_base(other)
        result = self._run([sys.executable, TEST, self.config, self.checkpoint, '--work-dir',
                            osp.join(self.root, 'replaced')])
        self.assertNotEqual(result.returncode, 0)
        line = last_line(result.stdout)
        self.assertRegex(line, r'^mmda_vpt\.checkpoints\.base_weights\.BaseWeightsMismatchError: '
                         rf"the base weights '{self.base}' of this DA-VPT checkpoint")
        self.assertIn(f'fingerprint of its base weights {expected}', line)
        self.assertIn(f'looked at: {self.base} (other weights: {weights_fingerprint(other)}), '
                      f'{osp.join(self.work, "base.pth")} (no file) ({PRETRAINED_DIR_ENV} is not '
                      'set', line)

    def test_matching_base_in_the_second_place(self):
        # The path as written holds other weights, the checkpoint's folder the right ones.
        beside = osp.join(self.work, 'base.pth')
        shutil.copy(self.base, beside)
        self.addCleanup(os.remove, beside)
        self._replace_base(host_weights(seed=2))
        scores = self._scores(self.checkpoint, 'second_place')
        assert torch.equal(scores, self.reference)

    def test_checkpoint_without_fingerprint_loads_with_one_warning(self):
        state = torch.load(self.checkpoint)
        key = f'backbone.{BASE_WEIGHTS_KEY}'
        pointer = decode_base_weights(state['state_dict'][key])
        del pointer[FINGERPRINT]
        state['state_dict'][key] = encode_base_weights(pointer)
        old = osp.join(self.root, 'old', 'epoch_2.pth')
        os.makedirs(osp.dirname(old))
        torch.save(state, old)
        scores = self._scores(old, 'old_test')
        assert torch.equal(scores, self.reference)
        (log, ) = glob.glob(osp.join(self.root, 'old_test', '*', '*.log'))
        with open(log) as file:
            # (tools/test.py --out adds mmpretrain's own warning on DumpResults' prefix)
            lines = [line for line in file if 'WARNING' in line and 'DumpResults' not in line]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn('records no fingerprint of its base weights', lines[0])

    def test_unreadable_checkpoint_through_test_tool(self):
        with open(self.checkpoint, 'rb') as file:
            data = file.read()
        truncated = osp.join(self.root, 'truncated.pth')
        with open(truncated, 'wb') as file:
            file.write(data[:len(data) // 2])
        result = self._run([sys.executable, TEST, self.config, truncated, '--work-dir',
                            osp.join(self.root, 'truncated')])
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(
            last_line(result.stdout),
            'mmda_vpt.checkpoints.checkpoint_errors.UnreadableCheckpointError: checkpoint '
            f'{truncated} ({len(data) // 2:,} bytes) cannot be read: it is the beginning of a '
            'zip archive whose end is missing (truncated: an interrupted save or copy?); '
            "expected a checkpoint written by torch.save (mmengine's save_checkpoint, "
            'tools/train.py): a zip archive, or the legacy pickle format')
        self.assertNotIn('weights_only', result.stdout)
        self.assertNotIn('Errno 22', result.stdout)
        garbage = osp.join(self.root, 'garbage.pth')
        with open(garbage, 'wb') as file:
            file.write(b'version https://git-lfs.github.com/spec/v1\n')
        with self.assertRaisesRegex(UnreadableCheckpointError,
                                    rf"^checkpoint {garbage} \(43 bytes\) cannot be read: it "
                                    r"starts with b'version ', which is neither a zip archive"):
            as_test_tool(self.config, garbage, '--work-dir', osp.join(self.root, 'garbage'))

    def test_resume_names_the_checkpoints_that_load(self):
        broken = osp.join(self.root, 'broken')
        shutil.copytree(self.work, broken)
        self.addCleanup(shutil.rmtree, broken)
        epoch_1, epoch_2 = osp.join(broken, 'epoch_1.pth'), osp.join(broken, 'epoch_2.pth')
        with open(epoch_2, 'rb') as file:
            data = file.read()
        with open(epoch_2, 'wb') as file:  # the last save was interrupted
            file.write(data[:len(data) // 3])
        last = osp.join(broken, 'last_checkpoint')
        with open(last, 'w') as file:
            file.write(epoch_2)
        result = self._run([sys.executable, TRAIN, self.config, '--work-dir', broken,
                            '--resume', '--cfg-options', 'train_cfg.max_epochs=3'])
        self.assertNotEqual(result.returncode, 0)
        line = last_line(result.stdout)
        self.assertRegex(line, r'^mmda_vpt\.checkpoints\.checkpoint_errors\.'
                         r'UnreadableCheckpointError: '
                         rf'cannot resume: checkpoint {epoch_2} \([\d,]+ bytes\) cannot be read: '
                         'it is the beginning of a zip archive whose end is missing')
        self.assertTrue(line.endswith(f'; checkpoints in {broken} that load, newest first: '
                                      f'{epoch_1} (resume from one with --resume PATH)'), line)
        # last_checkpoint itself cut short, or garbage: the same list.
        argv = [self.config, '--work-dir', broken, '--resume']
        for content in (epoch_2[:-6].encode(), b'\xff\xfe\x00\x13garbage'):
            with self.subTest(last_checkpoint=content):
                with open(last, 'wb') as file:
                    file.write(content)
                with self.assertRaisesRegex(
                        FileNotFoundError, r"^cannot resume: the latest checkpoint '.*', named by "
                        rf'{last}, does not exist; checkpoints in {broken} that load, newest '
                        rf'first: {epoch_1} \(resume from one with --resume PATH\)$'):
                    as_train_tool(*argv)

    def test_missing_pretrained_names_the_converter(self):
        missing = osp.join(self.root, 'checkpoints', 'vit-b16_in21k-augreg.pth')
        with self.assertRaises(FileNotFoundError) as caught:
            as_train_tool(self.config, '--work-dir', osp.join(self.root, 'missing'),
                          '--cfg-options', f'model.backbone.init_cfg.checkpoint={missing}')
        self.assertEqual(
            str(caught.exception), missing_augreg_message(missing))
