"""Tests of tools/export_checkpoint.py on the demo's grayscale models (1-channel input)."""
import os.path as osp
import tempfile
from unittest import TestCase

import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

import mmda_vpt  # noqa: F401
from mmda_vpt.engine.hooks.trainable_checkpoint_hook import frozen_backbone_keys
from mmda_vpt.checkpoints.base_weights import is_base_weights_key
from tests.utils import REPO, load_tool

DEMO = osp.join(REPO, 'demo', 'configs')
CLS_CONFIG = osp.join(DEMO, 'davpt_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py')
SEG_CONFIG = osp.join(DEMO, 'davpt_setr-pup-vit-demo-p4-fmnist_1xb8-500i_demo-seg-48x48.py')


class TestExportCheckpoint(TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tool = load_tool('export_checkpoint', 'mmda_vpt_export_tool')

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def test_check_inputs_follow_the_model(self):
        for config, shape in ((CLS_CONFIG, (2, 1, 28, 28)), (SEG_CONFIG, (2, 1, 48, 48))):
            with self.subTest(config=osp.basename(config)):
                model = self.tool.build_model(Config.fromfile(config), init_cfg=False)
                inputs = self.tool.check_inputs(model)
                self.assertEqual(tuple(inputs.shape), shape)
                # Normalized by the data preprocessor: no longer in [0, 255].
                self.assertLess(inputs.min().item(), -0.5)

    def test_export_grayscale_classifier_from_trainable_checkpoint(self):
        # The demo's DA-VPT: a trainable-only checkpoint over a base file of its 1-channel ViT.
        cfg = Config.fromfile(CLS_CONFIG)
        bare = self.tool.build_model(cfg, init_cfg=False)
        frozen = frozen_backbone_keys(bare)
        base = osp.join(self.tmp, 'base.pth')
        torch.save(dict(state_dict={k: v for k, v in bare.state_dict().items() if k in frozen}),
                   base)
        options = {'model.backbone.init_cfg.checkpoint': base}
        cfg.merge_from_dict(options)
        model = self.tool.build_model(cfg)
        model.init_weights()
        with torch.no_grad():
            model.backbone.prompts['0'].normal_()
        trainable = osp.join(self.tmp, 'epoch_10.pth')
        torch.save(dict(state_dict={k: v for k, v in model.state_dict().items()
                                    if k not in frozen},
                        meta=dict(dataset_meta=dict(classes=[str(i) for i in range(10)]))),
                   trainable)
        out = osp.join(self.tmp, 'exported.pth')
        self.tool.main([CLS_CONFIG, trainable, out, '--cfg-options',
                        f'model.backbone.init_cfg.checkpoint={base}'])
        exported = torch.load(out)
        self.assertFalse(any(is_base_weights_key(k) for k in exported['state_dict']))
        fresh = self.tool.build_model(Config.fromfile(CLS_CONFIG), init_cfg=False)
        load_checkpoint(fresh, out, map_location='cpu', strict=True)
        for name, value in model.state_dict().items():
            if not is_base_weights_key(name):
                assert torch.equal(fresh.state_dict()[name], value), name

    def test_export_grayscale_segmentor(self):
        model = self.tool.build_model(Config.fromfile(SEG_CONFIG), init_cfg=False)
        full = osp.join(self.tmp, 'iter_500.pth')
        torch.save(dict(state_dict=model.state_dict(), meta=dict()), full)
        out = osp.join(self.tmp, 'exported.pth')
        written = self.tool.export_checkpoint(SEG_CONFIG, full, out)
        self.assertEqual(written['tensors'], len(torch.load(out)['state_dict']))
