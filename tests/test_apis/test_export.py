"""Tests of mmda_vpt.apis.model and .export on the demo's grayscale models (1-channel input),
and of tools/export_checkpoint.py's command line (one subprocess)."""
import os.path as osp
import tempfile
from unittest import TestCase

import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

import mmda_vpt  # noqa: F401
from mmda_vpt.apis import build_model, check_inputs, export_checkpoint, load_model
from mmda_vpt.checkpoints.base_weights import is_base_weights_key
from mmda_vpt.engine.hooks.trainable_checkpoint_hook import frozen_backbone_keys
from tests.utils import REPO, run_tool

DEMO = osp.join(REPO, 'demo', 'configs')
CLS_CONFIG = osp.join(DEMO, 'davpt_vit-demo-p4-fmnist_1xb25-10e_mnist5k-28.py')
SEG_CONFIG = osp.join(DEMO, 'davpt_setr-pup-vit-demo-p4-fmnist_1xb8-500i_demo-seg-48x48.py')
CLASSES = [str(i) for i in range(10)]


class TestExportCheckpoint(TestCase):

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def trained_classifier(self):
        """The demo's DA-VPT classifier with drawn prompts, saved trainable-only over a base
        file of its 1-channel ViT: (model, checkpoint, cfg_options naming the base file)."""
        cfg = Config.fromfile(CLS_CONFIG)
        bare = build_model(cfg, init_cfg=False)
        frozen = frozen_backbone_keys(bare)
        base = osp.join(self.tmp, 'base.pth')
        torch.save(dict(state_dict={k: v for k, v in bare.state_dict().items() if k in frozen}),
                   base)
        options = {'model.backbone.init_cfg.checkpoint': base}
        cfg.merge_from_dict(options)
        model = build_model(cfg)
        model.init_weights()
        with torch.no_grad():
            model.backbone.prompts['0'].normal_()
        trainable = osp.join(self.tmp, 'epoch_10.pth')
        torch.save(dict(state_dict={k: v for k, v in model.state_dict().items()
                                    if k not in frozen},
                        meta=dict(dataset_meta=dict(classes=CLASSES))), trainable)
        return model, trainable, options

    def assert_same_weights(self, model, expected):
        own = model.state_dict()
        for name, value in expected.state_dict().items():
            if not is_base_weights_key(name):
                assert torch.equal(own[name], value), name

    def test_check_inputs_follow_the_model(self):
        for config, shape in ((CLS_CONFIG, (2, 1, 28, 28)), (SEG_CONFIG, (2, 1, 48, 48))):
            with self.subTest(config=osp.basename(config)):
                model = build_model(Config.fromfile(config), init_cfg=False)
                inputs = check_inputs(model)
                self.assertEqual(tuple(inputs.shape), shape)
                # Normalized by the data preprocessor: no longer in [0, 255].
                self.assertLess(inputs.min().item(), -0.5)

    def test_load_model_from_trainable_checkpoint(self):
        model, trainable, options = self.trained_classifier()
        loaded = load_model(CLS_CONFIG, trainable, cfg_options=options)
        self.assertFalse(loaded.training)
        self.assertEqual(loaded.dataset_meta, dict(classes=CLASSES))
        self.assertEqual(loaded.cfg.model.backbone.init_cfg.checkpoint,
                         options['model.backbone.init_cfg.checkpoint'])
        self.assert_same_weights(loaded, model)

    def test_load_model_is_strict(self):
        model, _, options = self.trained_classifier()
        extra = osp.join(self.tmp, 'extra.pth')
        torch.save(dict(state_dict=dict(model.state_dict(), unknown=torch.zeros(1))), extra)
        with self.assertRaisesRegex(RuntimeError, r'unexpected key in source state_dict: '
                                    'unknown'):
            load_model(CLS_CONFIG, extra, cfg_options=options)

    def test_export_grayscale_classifier_from_trainable_checkpoint(self):
        model, trainable, options = self.trained_classifier()
        (option, base), = options.items()
        out = osp.join(self.tmp, 'exported.pth')
        result = run_tool('export_checkpoint.py',
                          [CLS_CONFIG, trainable, out, '--cfg-options', f'{option}={base}'],
                          cwd=self.tmp)
        self.assertEqual(result.returncode, 0, result.stdout[-6000:])
        self.assertIn(f'to {out}: it loads strictly without init_cfg', result.stdout)
        exported = torch.load(out)
        self.assertFalse(any(is_base_weights_key(k) for k in exported['state_dict']))
        self.assertEqual(exported['meta']['dataset_meta'], dict(classes=CLASSES))
        fresh = build_model(Config.fromfile(CLS_CONFIG), init_cfg=False)
        load_checkpoint(fresh, out, map_location='cpu', strict=True)
        self.assert_same_weights(fresh, model)

    def test_export_grayscale_segmentor(self):
        model = build_model(Config.fromfile(SEG_CONFIG), init_cfg=False)
        full = osp.join(self.tmp, 'iter_500.pth')
        torch.save(dict(state_dict=model.state_dict(), meta=dict()), full)
        out = osp.join(self.tmp, 'exported.pth')
        written = export_checkpoint(SEG_CONFIG, full, out)
        self.assertEqual(written['tensors'], len(torch.load(out)['state_dict']))
        self.assertEqual(written['bytes'], osp.getsize(out))
        self.assert_same_weights(load_model(SEG_CONFIG, out), model)
