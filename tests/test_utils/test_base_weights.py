"""Unit tests of mmda_vpt.utils.base_weights and of the backbone's base-weights entry."""
import os
import os.path as osp
import tempfile
from unittest import TestCase, mock

import torch
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

import mmda_vpt  # noqa: F401
from mmda_vpt.utils.base_weights import (BASE_WEIGHTS_KEY, PRETRAINED_DIR_ENV,
                                         base_weights_candidates, decode_base_weights,
                                         encode_base_weights, install_checkpoint_loader,
                                         resolve_base_weights)

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _backbone(**kwargs):
    cfg = dict(type='DAVPTViT', _scope_='mmpretrain', arch=ARCH, img_size=16, patch_size=8,
               num_prompts=2, norm_cfg=dict(type='LN', eps=1e-6))
    cfg.update(kwargs)
    return MODELS.build(cfg)


class TestBaseWeights(TestCase):

    def test_entry_round_trip(self):
        pointer = dict(path='checkpoints/vit.pth', prefix='backbone.')
        entry = encode_base_weights(pointer)
        self.assertEqual(entry.dtype, torch.uint8)
        self.assertEqual(decode_base_weights(entry), pointer)
        with self.assertRaisesRegex(ValueError, 'must be a 1-D uint8 tensor'):
            decode_base_weights(torch.zeros(3))
        with self.assertRaisesRegex(ValueError, 'must name a path'):
            decode_base_weights(encode_base_weights(dict(prefix=None)))

    def test_candidates_in_order(self):
        pointer = dict(path='checkpoints/vit.pth', prefix=None, checkpoint_dir='/runs/a')
        with mock.patch.dict(os.environ, {PRETRAINED_DIR_ENV: '/weights'}):
            self.assertEqual(base_weights_candidates(pointer), [
                'checkpoints/vit.pth', '/runs/a/checkpoints/vit.pth', '/runs/a/vit.pth',
                '/weights/checkpoints/vit.pth', '/weights/vit.pth'
            ])
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(osp.join(tmp, 'checkpoints'))
            target = osp.join(tmp, 'checkpoints', 'vit.pth')
            open(target, 'w').close()
            pointer['checkpoint_dir'] = tmp
            self.assertEqual(resolve_base_weights(pointer), target)
        # Remote checkpoints go to mmengine's loaders as written.
        self.assertEqual(resolve_base_weights(dict(path='https://x/vit.pth')),
                         'https://x/vit.pth')

    def test_loader_installed_once(self):
        loader = CheckpointLoader._schemes['']
        install_checkpoint_loader()
        self.assertIs(CheckpointLoader._schemes[''], loader)
        self.assertEqual(loader.__name__, 'load_from_local')

    def test_state_dict_names_the_base_weights(self):
        with tempfile.TemporaryDirectory() as tmp:
            base = osp.join(tmp, 'base.pth')
            torch.save(VisionTransformer(arch=ARCH, img_size=16, patch_size=8).state_dict(),
                       base)
            model = _backbone(init_cfg=dict(type='Pretrained', checkpoint=base))
            self.assertNotIn(BASE_WEIGHTS_KEY, _backbone().state_dict())
            model.init_weights()
            state = model.state_dict()
            self.assertEqual(decode_base_weights(state[BASE_WEIGHTS_KEY]),
                             dict(path=base, prefix=None))
            full = osp.join(tmp, 'full.pth')
            torch.save(dict(state_dict=state), full)
            os.remove(base)
            # A full state dict loads strictly without its base file, and carries the pointer on.
            fresh = _backbone()
            load_checkpoint(fresh, full, strict=True)
            self.assertEqual(fresh.base_weights, dict(path=base, prefix=None))
            for name, value in model.state_dict().items():
                if name != BASE_WEIGHTS_KEY:
                    assert torch.equal(fresh.state_dict()[name], value), name
            # A plain host state dict still loads strictly with num_prompts=0.
            host = VisionTransformer(arch=ARCH, img_size=16, patch_size=8)
            _backbone(num_prompts=0, guided_layers=()).load_state_dict(host.state_dict())
