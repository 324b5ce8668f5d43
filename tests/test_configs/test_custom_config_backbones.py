"""The custom configs take another ViT by the variables their headers name, nothing else.

Each config's text gets other values for its backbone variables (``embed_dims``,
``num_layers``, ``num_heads``, ``patch_size``, ``backbone_checkpoint``) and a small
``crop_size``; the model it builds must have that backbone, heads reading its width and guided
(and, for SETR, tapped) layers within its depth, and run a forward pass.
"""
import os.path as osp
import re
import tempfile
from unittest import TestCase

import torch
from mmengine.config import Config

import mmda_vpt  # noqa: F401
from tests.utils import REPO

CUSTOM = osp.join(REPO, 'configs', 'custom')
CLS_CONFIG = osp.join(CUSTOM, 'davpt_vit-b16-in21k_1xb32-100e_custom-cls-224.py')
SEG_CONFIG = osp.join(CUSTOM, 'davpt_setr-pup-vit-l16-in21k_8xb2-80k_custom-seg-512x512.py')
TINY = dict(embed_dims='48', num_layers='4', num_heads='2', patch_size='8',
            backbone_checkpoint="'checkpoints/tiny.pth'")


def with_values(path: str, out: str, **values: str) -> Config:
    """The config at ``path`` with ``name = value`` for each of ``values`` (each set once at
    the start of a line), written to ``out`` with its relative bases made absolute."""
    with open(path) as f:
        text = f.read()
    for name, value in values.items():
        text, count = re.subn(rf'^{name} = .*$', f'{name} = {value}', text, flags=re.M)
        assert count == 1, f'{osp.basename(path)} sets {name} {count} times'
    text = text.replace("'../_base_/", repr(osp.join(REPO, 'configs', '_base_', ''))[:-1])
    with open(out, 'w') as f:
        f.write(text)
    return Config.fromfile(out)


class TestCustomConfigBackbones(TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def test_classification(self):
        from mmpretrain.registry import MODELS
        stock = Config.fromfile(CLS_CONFIG)
        self.assertEqual(stock.model.head.in_channels, 768)
        self.assertEqual(stock.model.backbone.guided_layers, (10, 11))
        cfg = with_values(CLS_CONFIG, osp.join(self.tmp.name, 'cls.py'), crop_size='32',
                          num_classes='5', **TINY)
        self.assertEqual(cfg.model.backbone.init_cfg.checkpoint, 'checkpoints/tiny.pth')
        model = MODELS.build(cfg.model)
        self.assertEqual(model.backbone.embed_dims, 48)
        self.assertEqual(len(model.backbone.layers), 4)
        self.assertEqual(model.backbone.guided_layers, (2, 3))
        self.assertEqual(model.head.fc.in_features, 48)
        model.eval()
        with torch.no_grad():
            logits = model(torch.rand(2, 3, 32, 32), mode='tensor')
        self.assertEqual(tuple(logits.shape), (2, 5))

    def test_segmentation(self):
        from mmseg.registry import MODELS
        stock = Config.fromfile(SEG_CONFIG)
        self.assertEqual(stock.model.backbone.out_indices, (8, 11, 17, 23))
        self.assertEqual(stock.model.backbone.guided_layers, (22, 23))
        self.assertEqual([stock.model.decode_head.in_channels] +
                         [h.in_channels for h in stock.model.auxiliary_head], [1024] * 4)
        cfg = with_values(SEG_CONFIG, osp.join(self.tmp.name, 'seg.py'), crop_size='(32, 32)',
                          **TINY)
        self.assertEqual(cfg.model.backbone.init_cfg.checkpoint, 'checkpoints/tiny.pth')
        self.assertEqual(cfg.model.backbone.out_indices, (0, 1, 2, 3))
        model = MODELS.build(cfg.model)
        self.assertEqual(model.backbone.guided_layers, (2, 3))
        self.assertEqual(len(model.backbone.layers), 4)
        for head in [model.decode_head, *model.auxiliary_head]:
            self.assertEqual(head.in_channels, 48)
        model.eval()
        with torch.no_grad():
            logits = model(torch.rand(1, 3, 32, 32), mode='tensor')
        self.assertEqual(logits.shape[:2], (1, 2))
