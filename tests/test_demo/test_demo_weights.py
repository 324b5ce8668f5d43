"""The demo's shipped pre-trained ViT (demo/weights): the file, its recorded hash, strict loading
into the demo's configs, and the demo using it without pre-training."""
import hashlib
import json
import os.path as osp
import re
import shutil
import tempfile
from unittest import TestCase, mock

import torch
from mmengine.config import Config

import mmda_vpt  # noqa: F401
from demo import run_demo

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHIPPED = run_demo.SHIPPED_CHECKPOINT


def sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def demo_args(cache: str, *extra: str):
    return run_demo.parse_args(['--cache', cache, '--work-dir', osp.join(cache, 'work'), *extra])


class NoTraining(Exception):
    """Raised by the patched training: the step under test must not train."""


class TestShippedWeights(TestCase):

    @classmethod
    def setUpClass(cls):
        with open(SHIPPED + '.json') as f:
            cls.meta = json.load(f)

    def test_file_and_recorded_hash(self):
        self.assertEqual(osp.relpath(SHIPPED, REPO),
                         osp.join('demo', 'weights', 'vit-demo-p4_fashion-mnist.pth'))
        self.assertLess(osp.getsize(SHIPPED), 2_000_000)
        digest = sha256(SHIPPED)
        self.assertEqual(self.meta['sha256'], digest)
        with open(osp.join(REPO, 'docs', 'demo.md')) as f:
            recorded = re.findall(r'SHA-256\s+`([0-9a-f]{64})`', f.read())
        self.assertEqual(recorded, [digest])
        self.assertTrue(osp.isfile(osp.join(osp.dirname(SHIPPED), self.meta['scalars'])))

    def test_made_by_the_current_pretraining_config(self):
        # The demo uses the shipped file only where its config's fingerprint is unchanged.
        with tempfile.TemporaryDirectory() as tmp:
            cfg = run_demo.pretrain_config(demo_args(tmp), run_demo.Size(), 'data/demo')
        self.assertEqual(self.meta['fingerprint'], run_demo.pretrain_fingerprint(cfg))
        self.assertEqual(self.meta['config'], run_demo.PRETRAIN_CONFIG)

    def test_loads_strictly_into_the_demo_configs(self):
        from mmpretrain.registry import MODELS as PRETRAIN_MODELS
        from mmseg.registry import MODELS as SEG_MODELS
        saved = torch.load(SHIPPED, map_location='cpu', weights_only=True)
        # The pre-training classifier, as the config builds it.
        cfg = Config.fromfile(osp.join(run_demo.CONFIG_DIR, run_demo.PRETRAIN_CONFIG))
        classifier = PRETRAIN_MODELS.build(cfg.model)
        classifier.load_state_dict(saved['state_dict'], strict=True)
        # The transfer backbone (DAVPTViT's strict loader: prompts are the only new keys) and
        # the segmentation backbone (through the demo's mmseg copy).
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint, _ = run_demo.use_shipped(demo_args(tmp), self.meta['fingerprint'])
            for config, registry, path in (
                    (run_demo.METHOD_BY_KEY['davpt'].config, PRETRAIN_MODELS, checkpoint),
                    (run_demo.SEG_CONFIG, SEG_MODELS,
                     checkpoint[:-len('.pth')] + '_mmseg.pth')):
                with self.subTest(config=config):
                    backbone_cfg = Config.fromfile(osp.join(run_demo.CONFIG_DIR,
                                                            config)).model.backbone
                    backbone_cfg.init_cfg.checkpoint = path
                    backbone = registry.build(backbone_cfg)
                    backbone.init_weights()
                    torch.testing.assert_close(backbone.cls_token.detach(),
                                               saved['state_dict']['backbone.cls_token'])


class TestDemoUsesShippedWeights(TestCase):

    def test_default_skips_pretraining(self):
        with tempfile.TemporaryDirectory() as tmp, \
                mock.patch.object(run_demo, 'train_and_test', side_effect=NoTraining):
            checkpoint, meta = run_demo.pretrain(demo_args(tmp), run_demo.Size(), 'data/demo')
            self.assertEqual(checkpoint, osp.join(tmp, 'shipped', osp.basename(SHIPPED)))
            self.assertEqual(sha256(checkpoint), sha256(SHIPPED))
            self.assertTrue(osp.isfile(checkpoint[:-len('.pth')] + '_mmseg.pth'))
            self.assertGreater(meta['fashion_mnist_test_top1'], 10.0)
            self.assertEqual(meta['scalars'],
                             osp.join(osp.dirname(SHIPPED), osp.basename(meta['scalars'])))
            # --pretrain (and --quick) pre-train instead.
            for extra, size in ((['--pretrain'], run_demo.Size()), ([], run_demo.QUICK)):
                with self.subTest(extra=extra, size=size.tag), self.assertRaises(NoTraining):
                    run_demo.pretrain(demo_args(tmp, *extra), size, 'data/demo')

    def test_damaged_or_stale_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            copy = osp.join(tmp, 'weights', osp.basename(SHIPPED))
            shutil.copytree(osp.dirname(SHIPPED), osp.dirname(copy))
            with mock.patch.object(run_demo, 'SHIPPED_CHECKPOINT', copy), \
                    mock.patch.object(run_demo, 'train_and_test', side_effect=NoTraining):
                with open(copy, 'r+b') as f:  # one flipped byte in the archive
                    f.seek(osp.getsize(copy) // 2)
                    byte = f.read(1)
                    f.seek(-1, 1)
                    f.write(bytes([byte[0] ^ 0xFF]))
                with self.assertRaisesRegex(RuntimeError, 'damaged.*--pretrain'):
                    run_demo.pretrain(demo_args(tmp), run_demo.Size(), 'data/demo')
                # Another pre-training config than the shipped file's: pre-train here.
                with open(copy + '.json') as f:
                    meta = json.load(f)
                meta['fingerprint'] = '0' * 16
                with open(copy + '.json', 'w') as f:
                    json.dump(meta, f)
                with self.assertRaises(NoTraining):
                    run_demo.pretrain(demo_args(tmp), run_demo.Size(), 'data/demo')
