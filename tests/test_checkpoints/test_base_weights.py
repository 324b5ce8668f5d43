"""Unit tests of mmda_vpt.checkpoints.base_weights and of the backbone's base-weights entry."""
import logging
import os
import os.path as osp
import tempfile
from collections import OrderedDict
from unittest import TestCase, mock

import torch
from mmengine.logging import MMLogger
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

import mmda_vpt  # noqa: F401
from mmda_vpt.checkpoints.base_weights import (BASE_WEIGHTS_KEY, FINGERPRINT, PRETRAINED_DIR_ENV,
                                         BaseWeightsMismatchError, base_weights_candidates,
                                         decode_base_weights, encode_base_weights,
                                         install_checkpoint_loader, resolve_base_weights,
                                         weights_fingerprint)
from mmda_vpt.checkpoints.frozen_weights import FrozenWeights
from tests.utils import missing_augreg_message, tiny_vit_weights

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _host_weights(seed: int) -> 'OrderedDict[str, torch.Tensor]':
    """A tiny host ViT's weights (non-trivial norms and biases) drawn with ``seed``."""
    return tiny_vit_weights(seed, ARCH, img_size=16)


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
            fingerprint = weights_fingerprint(torch.load(base))
            self.assertEqual(decode_base_weights(state[BASE_WEIGHTS_KEY]),
                             dict(path=base, prefix=None, fingerprint=fingerprint))
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


class TestBaseWeightsFingerprint(TestCase):
    """A trainable-only state dict takes the first base file whose weights it was trained on."""

    def setUp(self):
        env = {k: v for k, v in os.environ.items() if k != PRETRAINED_DIR_ENV}
        patcher = mock.patch.dict(os.environ, env, clear=True)
        patcher.start()
        self.addCleanup(patcher.stop)
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.base = osp.join(self.tmp, 'base.pth')
        torch.save(_host_weights(seed=1), self.base)
        self.trained = _backbone(init_cfg=dict(type='Pretrained', checkpoint=self.base))
        self.trained.init_weights()
        with torch.no_grad():
            for name in self.trained.trainable_names():
                self.trained.get_parameter(name).normal_()
        # What TrainableCheckpointHook keeps of the backbone: the trained part and the entry.
        names = set(self.trained.trainable_names()) | {BASE_WEIGHTS_KEY}
        self.state = {k: v for k, v in self.trained.state_dict().items() if k in names}
        self.folder = osp.join(self.tmp, 'run')
        os.makedirs(self.folder)
        self.checkpoint = osp.join(self.folder, 'epoch_1.pth')
        torch.save(dict(state_dict=self.state), self.checkpoint)

    def tearDown(self):
        self._tmp.cleanup()

    def _assert_weights_of(self, model, reference):
        for name, value in reference.state_dict().items():
            if name != BASE_WEIGHTS_KEY:
                assert torch.equal(model.state_dict()[name], value), name

    def test_fingerprint_of_content(self):
        weights = _host_weights(seed=1)
        fingerprint = weights_fingerprint(weights)
        self.assertRegex(fingerprint, r'^blake2b-128:[0-9a-f]{32}$')
        self.assertEqual(weights_fingerprint(OrderedDict(reversed(list(weights.items())))),
                         fingerprint)
        self.assertEqual(weights_fingerprint({k: v.clone() for k, v in weights.items()}),
                         fingerprint)
        self.assertNotEqual(weights_fingerprint(_host_weights(seed=2)), fingerprint)
        changed = dict(weights)
        changed['ln1.bias'] = changed['ln1.bias'].clone()
        changed['ln1.bias'][0] += 1e-6
        self.assertNotEqual(weights_fingerprint(changed), fingerprint)
        # The entry records the frozen weights the backbone holds: all of the base here.
        self.assertEqual(decode_base_weights(self.state[BASE_WEIGHTS_KEY])[FINGERPRINT],
                         fingerprint)

    def test_reconverted_base_matches(self):
        # The same tensors in another file layout (under 'state_dict', other key order, meta).
        weights = torch.load(self.base)
        torch.save(dict(state_dict=OrderedDict(reversed(list(weights.items()))),
                        meta=dict(converted_by='again')), self.base)
        model = _backbone()
        load_checkpoint(model, self.checkpoint, map_location='cpu', strict=True)
        self._assert_weights_of(model, self.trained)

    def test_replaced_base_refused(self):
        expected = weights_fingerprint(torch.load(self.base))
        other = _host_weights(seed=2)  # the same shapes, another draw
        torch.save(other, self.base)
        with self.assertRaises(BaseWeightsMismatchError) as caught:
            load_checkpoint(_backbone(), self.checkpoint, map_location='cpu')
        message = str(caught.exception)
        self.assertNotIn('\n', message)
        self.assertIn(f'fingerprint of its base weights {expected}', message)
        self.assertIn(f'{self.base} (other weights: {weights_fingerprint(other)})', message)
        self.assertIn(f'{osp.join(self.folder, "base.pth")} (no file)', message)

    def test_matching_base_in_the_second_place(self):
        # The path as written holds other weights; the checkpoint's folder holds the right ones.
        os.rename(self.base, osp.join(self.folder, 'base.pth'))
        torch.save(_host_weights(seed=2), self.base)
        model = _backbone()
        load_checkpoint(model, self.checkpoint, map_location='cpu', strict=True)
        self._assert_weights_of(model, self.trained)
        # ... and a backbone that holds the right base already loads nothing more.
        with mock.patch.object(FrozenWeights, 'load_pretrained') as loaded:
            load_checkpoint(model, self.checkpoint, map_location='cpu', strict=True)
        loaded.assert_not_called()

    def test_entry_without_fingerprint_loads_with_one_warning(self):
        pointer = decode_base_weights(self.state[BASE_WEIGHTS_KEY])
        del pointer[FINGERPRINT]
        self.state[BASE_WEIGHTS_KEY] = encode_base_weights(pointer)
        torch.save(dict(state_dict=self.state), self.checkpoint)
        model = _backbone()
        logger = MMLogger.get_current_instance()
        with self.assertLogs(logger, level=logging.WARNING) as logs:
            load_checkpoint(model, self.checkpoint, map_location='cpu', strict=True)
        self.assertEqual(len(logs.records), 1, logs.output)
        self.assertIn('records no fingerprint of its base weights', logs.output[0])
        self._assert_weights_of(model, self.trained)

    def test_missing_pretrained_names_the_converter(self):
        missing = osp.join(self.tmp, 'checkpoints', 'vit-b16_in21k-augreg.pth')
        model = _backbone(init_cfg=dict(type='Pretrained', checkpoint=missing))
        with self.assertRaises(FileNotFoundError) as caught:
            model.init_weights()
        self.assertEqual(
            str(caught.exception), missing_augreg_message(missing))
        # mmseg's host with final_norm=False (SETR): --dst mmseg --drop-final-norm.
        from mmseg.registry import MODELS as SEG_MODELS
        missing = 'checkpoints/vit-l16_jx384_mmseg.pth'
        seg = SEG_MODELS.build(dict(
            type='DAVPTViT', _scope_='mmseg', img_size=(16, 16), patch_size=8, embed_dims=32,
            num_layers=2, num_heads=2, mlp_ratio=2, final_norm=False, num_prompts=2,
            init_cfg=dict(type='Pretrained', checkpoint=missing)))
        with self.assertRaisesRegex(
                FileNotFoundError, r'made by: python tools/model_converters/convert_vit\.py '
                rf'jx_vit_large_p16_384-b3be5167\.pth {missing} --src-format timm --dst mmseg '
                r'--drop-final-norm '):
            seg.init_weights()
