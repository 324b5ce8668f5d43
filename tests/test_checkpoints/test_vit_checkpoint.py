"""Checkpoint conversion (Google npz / timm / safetensors / MAE / MoCo v3) against timm."""
import argparse
import copy
import os
import os.path as osp
import tempfile
from typing import Dict, Optional
from unittest import TestCase

import numpy as np
import timm
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed
from timm.models import get_pretrained_cfg
from timm.models.vision_transformer import _load_weights as timm_load_npz
from timm.models.vision_transformer import checkpoint_filter_fn

import mmda_vpt  # noqa: F401  (registers DAVPTViT)
from mmda_vpt.checkpoints.vit_checkpoint import (SRC_FORMATS, convert_vit_checkpoint,
                                                 convert_vit_weights, load_source_checkpoint,
                                                 save_converted_checkpoint)
from tests.utils import REPO, run_tool

DIM, DEPTH, HEADS, MLP, IMG, PATCH = 64, 2, 4, 256, 32, 8
GRID = IMG // PATCH
TOL = 1e-5


def make_timm_vit(seed: int = 0, **kwargs) -> torch.nn.Module:
    """A tiny timm ViT with every parameter randomized (norms and biases included)."""
    torch.manual_seed(seed)
    cfg = dict(img_size=IMG, patch_size=PATCH, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
               num_classes=10)
    cfg.update(kwargs)
    model = timm.create_model('vit_base_patch16_224', pretrained=False, **cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('gamma'):
                param.uniform_(0.5, 1.5)
            elif param.dim() == 1 and 'norm' in name and name.endswith('weight'):
                param.normal_(1.0, 0.1)
            else:
                param.normal_(0.0, 0.05 if param.dim() > 1 else 0.1)
    return model.eval()


def write_google_npz(state_dict: Dict[str, torch.Tensor], path: str, prefix: str = '',
                     big_vision: bool = False,
                     extra: Optional[Dict[str, np.ndarray]] = None) -> None:
    """Write timm weights in Google's Flax layout: the inverse of timm's ``_load_weights``.

    Classic ViT files (``Transformer/encoderblock_{i}/MultiHeadDotProductAttention_1/...``,
    ``MlpBlock_3``, ``LayerNorm_2``) or, with ``big_vision``, scanned blocks
    (``Transformer/encoderblock/...`` stacked over layers, sub-indices 0/0/1, ``pos_embedding``).
    """
    sd = {k: v.detach().numpy() for k, v in state_dict.items()}
    out = {
        'embedding/kernel': sd['patch_embed.proj.weight'].transpose(2, 3, 1, 0),
        'embedding/bias': sd['patch_embed.proj.bias'],
        'cls': sd['cls_token'],
        'Transformer/encoder_norm/scale': sd['norm.weight'],
        'Transformer/encoder_norm/bias': sd['norm.bias'],
        'head/kernel': sd['head.weight'].T,
        'head/bias': sd['head.bias'],
    }
    if big_vision:
        out['pos_embedding'] = sd['pos_embed']
    else:
        out['Transformer/posembed_input/pos_embedding'] = sd['pos_embed']
        out['pre_logits/kernel'] = np.eye(DIM, dtype=np.float32)
        out['pre_logits/bias'] = np.zeros(DIM, dtype=np.float32)
    mha_sub, mlp_sub, ln2_sub = (0, 0, 1) if big_vision else (1, 3, 2)
    head_dim = DIM // HEADS
    blocks = []
    for i in range(DEPTH):
        b = f'blocks.{i}.'
        mha = f'MultiHeadDotProductAttention_{mha_sub}/'
        blk = {
            'LayerNorm_0/scale': sd[b + 'norm1.weight'],
            'LayerNorm_0/bias': sd[b + 'norm1.bias'],
            f'LayerNorm_{ln2_sub}/scale': sd[b + 'norm2.weight'],
            f'LayerNorm_{ln2_sub}/bias': sd[b + 'norm2.bias'],
            mha + 'out/kernel': sd[b + 'attn.proj.weight'].reshape(DIM, HEADS, head_dim)
            .transpose(1, 2, 0),
            mha + 'out/bias': sd[b + 'attn.proj.bias'],
        }
        qkv_w = sd[b + 'attn.qkv.weight'].reshape(3, DIM, DIM)
        qkv_b = sd[b + 'attn.qkv.bias'].reshape(3, HEADS, head_dim)
        for j, name in enumerate(('query', 'key', 'value')):
            blk[f'{mha}{name}/kernel'] = qkv_w[j].T.reshape(DIM, HEADS, head_dim)
            blk[f'{mha}{name}/bias'] = qkv_b[j]
        for r in range(2):
            blk[f'MlpBlock_{mlp_sub}/Dense_{r}/kernel'] = sd[f'{b}mlp.fc{r + 1}.weight'].T
            blk[f'MlpBlock_{mlp_sub}/Dense_{r}/bias'] = sd[f'{b}mlp.fc{r + 1}.bias']
        blocks.append(blk)
    if big_vision:
        for name in blocks[0]:
            out[f'Transformer/encoderblock/{name}'] = np.stack([blk[name] for blk in blocks])
    else:
        for i, blk in enumerate(blocks):
            out.update({f'Transformer/encoderblock_{i}/{k}': v for k, v in blk.items()})
    out = {prefix + k: np.ascontiguousarray(v) for k, v in out.items()}
    out.update(extra or {})
    np.savez(path, **out)


def build_pretrain(checkpoint: str, **kwargs) -> torch.nn.Module:
    cfg = dict(
        type='DAVPTViT',
        arch=dict(embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS, feedforward_channels=MLP),
        img_size=IMG,
        patch_size=PATCH,
        num_prompts=0,
        guided_layers=(),
        out_type='raw',
        norm_cfg=dict(type='LN', eps=1e-6),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    cfg.update(kwargs)
    model = PRETRAIN_MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def build_seg(checkpoint: str, **kwargs) -> torch.nn.Module:
    cfg = dict(
        type='DAVPTViT',
        embed_dims=DIM,
        num_layers=DEPTH,
        num_heads=HEADS,
        img_size=IMG,
        patch_size=PATCH,
        num_prompts=0,
        guided_layers=(),
        final_norm=True,
        patch_bias=True,  # mmseg's default is False; Google / timm ViTs have the bias
        norm_cfg=dict(type='LN', eps=1e-6),
        out_indices=(DEPTH - 1, ),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    cfg.update(kwargs)
    model = SEG_MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def to_map(tokens: torch.Tensor) -> torch.Tensor:
    """timm patch tokens (B, N, D) -> NCHW."""
    return tokens.reshape(tokens.shape[0], GRID, GRID, DIM).permute(0, 3, 1, 2)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


class ConverterTestCase(TestCase):
    """Writes one timm ViT in every source format once for all tests."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.timm_model = make_timm_vit()
        cls.sd = {k: v.detach().clone() for k, v in cls.timm_model.state_dict().items()}
        torch.manual_seed(1)
        cls.images = torch.randn(2, 3, IMG, IMG)
        with torch.no_grad():
            cls.features = cls.timm_model.forward_features(cls.images)  # (B, 1 + N, D)
            no_norm = copy.deepcopy(cls.timm_model)
            no_norm.norm = torch.nn.Identity()
            cls.features_no_norm = no_norm.forward_features(cls.images)
        sd = cls.sd
        cls.sources = {
            'npz': cls.path('vit.npz'),
            'timm': cls.path('vit_timm.pth'),
            'safetensors': cls.path('vit.safetensors'),
            'mae': cls.path('mae_pretrain_vit.pth'),
            'mocov3': cls.path('mocov3_vit.pth.tar'),
        }
        write_google_npz(sd, cls.sources['npz'])
        torch.save(sd, cls.sources['timm'])
        save_file({k: v.contiguous() for k, v in sd.items()}, cls.sources['safetensors'])
        backbone = {k: v for k, v in sd.items() if not k.startswith('head.')}
        mae = dict(backbone)
        mae.update({
            'mask_token': torch.randn(1, 1, DIM),
            'decoder_embed.weight': torch.randn(32, DIM),
            'decoder_pos_embed': torch.randn(1, GRID * GRID + 1, 32),
            'decoder_blocks.0.norm1.weight': torch.randn(32),
            'decoder_norm.weight': torch.randn(32),
            'decoder_pred.weight': torch.randn(PATCH * PATCH * 3, 32),
        })
        torch.save({'model': mae}, cls.sources['mae'])
        moco = {'module.base_encoder.' + k: v for k, v in backbone.items()}
        # The momentum encoder holds other values: taking it instead would show.
        moco.update({'module.momentum_encoder.' + k: v + 1.0 for k, v in backbone.items()})
        moco.update({
            'module.base_encoder.head.0.weight': torch.randn(128, DIM),
            'module.base_encoder.head.1.running_mean': torch.randn(128),
            'module.predictor.0.weight': torch.randn(128, 128),
        })
        torch.save({'epoch': 300, 'arch': 'vit_base', 'state_dict': moco,
                    'optimizer': {'state': {}}}, cls.sources['mocov3'])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def path(cls, name: str) -> str:
        return osp.join(cls.tmp.name, name)

    def convert(self, src_format: str, dst: str, src: Optional[str] = None,
                name: Optional[str] = None) -> str:
        src = src or self.sources[src_format]
        state_dict, report = convert_vit_checkpoint(src, src_format, dst, log=False)
        out = self.path(name or f'{src_format}_{dst}.pth')
        save_converted_checkpoint(state_dict, out, report, source=src)
        return out


class TestGoogleNpzFixture(ConverterTestCase):

    def test_npz_fixture_matches_timm_reader(self):
        # The npz files the tests write are laid out as timm's own npz loader expects.
        for prefix, big_vision in (('', False), ('opt/target/', False), ('params/', True)):
            with self.subTest(prefix=prefix, big_vision=big_vision):
                path = self.path(f'fixture_{big_vision}_{prefix.replace("/", "_")}.npz')
                write_google_npz(self.sd, path, prefix=prefix, big_vision=big_vision)
                fresh = make_timm_vit(seed=5)
                timm_load_npz(fresh, path)
                for key, value in fresh.state_dict().items():
                    assert torch.equal(value, self.sd[key]), key


class TestViTCheckpointConversion(ConverterTestCase):

    def test_equivalence_mmpretrain(self):
        for src_format in SRC_FORMATS:
            with self.subTest(src_format=src_format):
                path = self.convert(src_format, 'mmpretrain')
                raw = build_pretrain(path, out_type='raw')
                cls_model = build_pretrain(path, out_type='cls_token')
                with torch.no_grad():
                    tokens = raw(self.images)[-1]
                    cls_token = cls_model(self.images)[-1]
                self.assertLessEqual(max_diff(tokens, self.features), TOL)
                self.assertLessEqual(max_diff(cls_token, self.features[:, 0]), TOL)

    def test_equivalence_mmseg(self):
        for src_format in SRC_FORMATS:
            with self.subTest(src_format=src_format):
                model = build_seg(self.convert(src_format, 'mmseg'))
                with torch.no_grad():
                    maps = model(self.images)
                self.assertEqual(len(maps), 1)
                self.assertLessEqual(max_diff(maps[0], to_map(self.features[:, 1:])), TOL)

    def test_npz_variants(self):
        # opt/target/ prefix with optimizer state, and big_vision's scanned layout.
        variants = {
            'opt_target.npz': dict(prefix='opt/target/',
                                   extra={'opt/state/step': np.array(10)}),
            'big_vision.npz': dict(prefix='params/', big_vision=True),
        }
        for name, kwargs in variants.items():
            with self.subTest(name=name):
                src = self.path(name)
                write_google_npz(self.sd, src, **kwargs)
                path = self.convert('npz', 'mmpretrain', src=src, name=name + '.pth')
                with torch.no_grad():
                    tokens = build_pretrain(path)(self.images)[-1]
                self.assertLessEqual(max_diff(tokens, self.features), TOL)
        _, report = convert_vit_checkpoint(self.path('opt_target.npz'), 'npz', 'mmseg',
                                           log=False)
        self.assertEqual(report.dropped['optimizer state'], ['opt/state/step'])

    def test_layer_scale(self):
        timm_model = make_timm_vit(seed=3, init_values=1e-5)
        src = self.path('vit_ls.pth')
        torch.save(timm_model.state_dict(), src)
        path = self.convert('timm', 'mmpretrain', src=src, name='ls_mmpretrain.pth')
        model = build_pretrain(path, layer_scale_init_value=1e-5)
        with torch.no_grad():
            expected = timm_model.forward_features(self.images)
            self.assertLessEqual(max_diff(model(self.images)[-1], expected), TOL)
        with self.assertRaisesRegex(ValueError, r'blocks\.0\.ls1\.gamma: layer scale'):
            convert_vit_checkpoint(src, 'timm', 'mmseg', log=False)

    def test_mae_finetune_fc_norm(self):
        # MAE's fine-tune style: global average pooling with fc_norm, no final norm.
        timm_model = make_timm_vit(seed=4, global_pool='avg', fc_norm=True)
        state = {k: v for k, v in timm_model.state_dict().items() if not k.startswith('head.')}
        self.assertIn('fc_norm.weight', state)
        self.assertNotIn('norm.weight', state)
        src = self.path('mae_finetuned.pth')
        torch.save({'model': state}, src)
        with torch.no_grad():
            tokens = timm_model.forward_features(self.images)
            pooled = timm_model.forward_head(tokens, pre_logits=True)
        path = self.convert('mae', 'mmpretrain', src=src, name='mae_ft_mmpretrain.pth')
        model = build_pretrain(path, out_type='avg_featmap', final_norm=False)
        with torch.no_grad():
            self.assertLessEqual(max_diff(model(self.images)[-1], pooled), TOL)
        _, report = convert_vit_checkpoint(src, 'mae', 'mmseg', log=False)
        self.assertEqual(len(report.dropped), 1)
        self.assertEqual(sorted(next(iter(report.dropped.values()))),
                         ['fc_norm.bias', 'fc_norm.weight'])
        seg = build_seg(self.convert('mae', 'mmseg', src=src, name='mae_ft_mmseg.pth'),
                        final_norm=False)
        with torch.no_grad():
            self.assertLessEqual(max_diff(seg(self.images)[0], to_map(tokens[:, 1:])), TOL)

    def test_report_lists_mapping_and_drops(self):
        logger = MMLogger.get_current_instance()
        with self.assertLogs(logger, level='INFO') as logs:
            state_dict, report = convert_vit_checkpoint(self.sources['mocov3'], 'mocov3',
                                                        'mmseg')
        text = '\n'.join(logs.output)
        self.assertIn('module.base_encoder.blocks.{i}.attn.qkv.weight -> '
                      'layers.{i}.attn.attn.in_proj_weight  (x2)', text)
        self.assertIn('module.base_encoder.norm.weight -> ln1.weight', text)
        self.assertIn('patch_bias=True', text)
        self.assertEqual(len(report.mapped), len(state_dict))
        self.assertEqual(
            sorted(report.dropped['MoCo v3 projection head']),
            ['module.base_encoder.head.0.weight', 'module.base_encoder.head.1.running_mean'])
        momentum = report.dropped['MoCo v3 momentum encoder / predictor']
        self.assertIn('module.predictor.0.weight', momentum)
        self.assertIn('module.momentum_encoder.blocks.1.mlp.fc2.bias', momentum)
        _, report = convert_vit_checkpoint(self.sources['mae'], 'mae', 'mmpretrain', log=False)
        self.assertEqual(len(report.dropped['MAE decoder']), 6)
        _, report = convert_vit_checkpoint(self.sources['npz'], 'npz', 'mmpretrain', log=False)
        self.assertEqual(sorted(report.dropped['classification head / pre-logits']),
                         ['head/bias', 'head/kernel', 'pre_logits/bias', 'pre_logits/kernel'])
        self.assertIn(('Transformer/encoderblock_1/MultiHeadDotProductAttention_1/'
                       '{query,key,value}/kernel', 'layers.1.attn.qkv.weight'), report.mapped)

    def test_unknown_keys_refused(self):
        extra = dict(self.sd)
        extra['reg_token'] = torch.zeros(1, 4, DIM)
        extra['blocks.1.attn.q_norm.weight'] = torch.ones(DIM // HEADS)
        for dst in ('mmpretrain', 'mmseg'):
            with self.assertRaisesRegex(ValueError, r'unknown key.*blocks\.1\.attn\.q_norm\.'
                                        r"weight', 'reg_token'"):
                convert_vit_weights(extra, 'timm', dst)
        src = self.path('vit_extra.npz')
        write_google_npz(self.sd, src, extra={'Transformer/encoderblock_0/Adapter/kernel':
                                              np.zeros((DIM, 4), np.float32)})
        with self.assertRaisesRegex(ValueError, 'encoderblock_0/Adapter/kernel'):
            convert_vit_checkpoint(src, 'npz', 'mmpretrain', log=False)
        moco = {'state_dict': {'module.base_encoder.' + k: v for k, v in self.sd.items()}}
        moco['state_dict']['module.queue'] = torch.zeros(4, DIM)
        with self.assertRaisesRegex(ValueError, r"'module\.queue'"):
            convert_vit_weights(moco, 'mocov3', 'mmpretrain')
        with self.assertRaisesRegex(ValueError, 'not a MoCo v3 pre-training checkpoint'):
            convert_vit_weights(self.sd, 'mocov3', 'mmpretrain')

    def test_pickled_objects_need_allow_pickle(self):
        # MAE / DeiT training checkpoints carry their argparse namespace next to the weights.
        src = self.path('mae_with_args.pth')
        torch.save({'model': dict(self.sd), 'args': argparse.Namespace(lr=1e-3)}, src)
        with self.assertRaisesRegex(RuntimeError, 'allow_pickle=True'):
            convert_vit_checkpoint(src, 'mae', 'mmpretrain', log=False)
        state_dict, report = convert_vit_checkpoint(src, 'mae', 'mmpretrain', log=False,
                                                    allow_pickle=True)
        assert torch.equal(state_dict['layers.0.attn.qkv.weight'],
                           self.sd['blocks.0.attn.qkv.weight'])
        self.assertIn("ignored the top-level entries ['args']", report.notes[0])

    def test_incomplete_checkpoint_refused(self):
        partial = {k: v for k, v in self.sd.items() if k != 'blocks.1.mlp.fc1.bias'}
        with self.assertRaisesRegex(KeyError, r'missing.*blocks\.1\.mlp\.fc1\.bias'):
            convert_vit_weights(partial, 'timm', 'mmpretrain')
        npz = dict(load_source_checkpoint(self.sources['npz'], 'npz'))
        del npz['Transformer/encoderblock_0/MultiHeadDotProductAttention_1/key/kernel']
        with self.assertRaisesRegex(KeyError, 'MultiHeadDotProductAttention_1/key/kernel'):
            convert_vit_weights(npz, 'npz', 'mmseg')
        with self.assertRaisesRegex(FileNotFoundError, 'nowhere.npz does not exist'):
            convert_vit_checkpoint(self.path('nowhere.npz'), 'npz', 'mmseg', log=False)
        with self.assertRaisesRegex(ValueError, 'src_format must be one of'):
            convert_vit_weights(self.sd, 'jax', 'mmseg')
        with self.assertRaisesRegex(ValueError, 'dst must be one of'):
            convert_vit_weights(self.sd, 'timm', 'mmdet')

    def test_prompts_accepted(self):
        # Prompts (and DA-VPT+'s K/V biases) are the only keys a converted checkpoint lacks.
        pre_path = self.convert('npz', 'mmpretrain')
        seg_path = self.convert('npz', 'mmseg')
        models = (
            (pre_path, build_pretrain(pre_path, num_prompts=4, guided_layers=(-1, ),
                                      bias_tune='kv')),
            (seg_path, build_seg(seg_path, num_prompts=4, guided_layers=(-1, ),
                                 bias_tune='kv')),
        )
        for path, model in models:
            with self.subTest(model=type(model).__name__):
                parts = model._block_parts(model.layers[1])
                assert torch.equal(parts.qkv_weight, self.sd['blocks.1.attn.qkv.weight'])
                assert torch.equal(model.kv_bias[1].flatten(),
                                   self.sd['blocks.1.attn.qkv.bias'][DIM:])
                state_dict = torch.load(path, weights_only=True)['state_dict']
                missing, unexpected = model.load_state_dict(state_dict, strict=False)
                self.assertEqual(unexpected, [])
                prompts = [n for n in model.new_param_names() if n.startswith('prompts.')]
                self.assertEqual(len(prompts), DEPTH)
                self.assertEqual(sorted(missing), sorted(prompts))
                with torch.no_grad():
                    out = model(self.images)[-1]
                self.assertTrue(torch.isfinite(out).all())

    def test_mae_pretrain_with_avg_featmap(self):
        # The DA-VPT MAE configs pool the patch tokens (out_type='avg_featmap'); mmpretrain adds
        # a norm after the pooling (ln2) that MAE's pre-training checkpoint lacks: it loads
        # strictly, the new norm is the identity, and any other missing key still raises.
        path = self.convert('mae', 'mmpretrain')
        model = build_pretrain(path, out_type='avg_featmap', num_prompts=2)
        self.assertIn('ln2.weight', model.new_param_names())
        assert torch.equal(model.ln2.weight, torch.ones(DIM))
        assert torch.equal(model.ln2.bias, torch.zeros(DIM))
        state_dict = torch.load(path, weights_only=True)['state_dict']
        state_dict.pop('ln1.weight')
        broken = self.path('mae_no_norm.pth')
        torch.save({'state_dict': state_dict}, broken)
        with self.assertRaisesRegex(KeyError, r"missing keys: \['ln1.weight'\]"):
            build_pretrain(broken, out_type='avg_featmap', num_prompts=2)
        self.assertNotIn('ln2.weight', build_pretrain(path, num_prompts=2).new_param_names())

    def test_pos_embed_resized_like_timm(self):
        # Loading at 48x48 resizes the 4x4 position grid to 6x6 as timm's bicubic resampling
        # does (without anti-aliasing, which neither host uses).
        size = 48
        timm_model = make_timm_vit(seed=6, img_size=size)
        timm_model.load_state_dict(
            checkpoint_filter_fn(dict(self.sd), timm_model, interpolation='bicubic',
                                 antialias=False))
        torch.manual_seed(2)
        images = torch.randn(2, 3, size, size)
        with torch.no_grad():
            expected = timm_model.forward_features(images)
            pre = build_pretrain(self.convert('timm', 'mmpretrain'), img_size=size,
                                 interpolate_mode='bicubic')
            self.assertLessEqual(max_diff(pre(images)[-1], expected), TOL)
            seg = build_seg(self.convert('timm', 'mmseg'), img_size=size)
            patches = expected[:, 1:].reshape(2, size // PATCH, size // PATCH, DIM)
            self.assertLessEqual(max_diff(seg(images)[0], patches.permute(0, 3, 1, 2)), TOL)

    def test_mmseg_default_patch_bias_mismatch_named(self):
        # mmseg's VisionTransformer defaults to patch_bias=False: the strict loader names the
        # bias instead of dropping it silently as mmseg's own loader would.
        path = self.convert('timm', 'mmseg')
        with self.assertRaisesRegex(KeyError, r'unexpected keys.*patch_embed\.projection\.bias'):
            build_seg(path, patch_bias=False)


class TestConvertViTTool(ConverterTestCase):

    def test_cli(self):
        # As for mmseg's SETR: no final norm in the backbone.
        out = self.path('cli/mmseg.pth')
        result = run_tool('model_converters/convert_vit.py',
                          [self.sources['npz'], out, '--src-format', 'npz', '--dst', 'mmseg',
                           '--drop-final-norm'], cwd=self.tmp.name)
        self.assertEqual(result.returncode, 0, result.stdout[-6000:])
        saved = torch.load(out, map_location='cpu', weights_only=True)
        self.assertEqual(result.stdout.splitlines()[-1],
                         f'saved {len(saved["state_dict"])} tensors to {out}')
        self.assertEqual((saved['meta']['src_format'], saved['meta']['dst']), ('npz', 'mmseg'))
        self.assertNotIn('ln1.weight', saved['state_dict'])
        self.assertEqual(saved['meta']['dropped']['final norm (drop_final_norm, for '
                                                  'final_norm=False)'],
                         ['Transformer/encoder_norm/scale', 'Transformer/encoder_norm/bias'])
        with torch.no_grad():
            maps = build_seg(out, final_norm=False)(self.images)[0]
        self.assertLessEqual(max_diff(maps, to_map(self.features_no_norm[:, 1:])), TOL)


# ------------------------------------------------------------------------ published checkpoints
# The files the configs load, written as their publishers wrote them. The weights cannot be
# downloaded here: each is a timm model of the published architecture (head included) with random
# weights, at a tiny size (timm's key names do not depend on the size; the real-size key layout is
# checked on the meta device), saved in the published layout, converted with the README's command
# and loaded into a backbone with the host settings of the config family that uses the file.
AUGREG_CONFIG = 'da_vpt/fgvc/davpt-plus_vit-b16-in21k_1xb32-100e_cub-224.py'
MAE_CONFIG = 'da_vpt/fgvc/davpt-plus_vit-b16-mae_1xb32-100e_cub-224.py'
SETR_CONFIG = 'da_vpt/davpt_setr-pup-vit-l16-in21k_8xb2-160k_ade20k-512x512.py'


def published_state_dict(name: str, **kwargs) -> Dict[str, torch.Tensor]:
    """A published timm model's state dict at its real size, on the meta device (no memory)."""
    with torch.device('meta'):
        model = timm.create_model(name, pretrained=False, **kwargs)
    return model.state_dict()


def config_backbone(config: str, checkpoint: str, host: str, **kwargs) -> torch.nn.Module:
    """A config's backbone with its host settings (norms, biases, final norm, position
    interpolation) and the tiny size, no prompts, loading ``checkpoint`` strictly."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', config)).model.backbone
    cfg.update(img_size=IMG, patch_size=PATCH, num_prompts=0, guided_layers=(),
               num_guided_prompts=None, bias_tune=None,
               init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    if host == 'mmpretrain':
        cfg.update(arch=dict(embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS,
                             feedforward_channels=MLP))
        registry = PRETRAIN_MODELS
    else:
        cfg.update(embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS, mlp_ratio=MLP // DIM,
                   out_indices=tuple(range(DEPTH)))
        registry = SEG_MODELS
    cfg.update(kwargs)
    model = registry.build(cfg)
    model.init_weights()
    return model.eval()


def fold_layers(keys) -> set:
    return {_fold(k) for k in keys}


def _fold(key: str) -> str:
    import re
    return re.sub(r'^(blocks|layers)\.\d+\.', r'\1.{i}.', key)


class TestPublishedCheckpoints(TestCase):
    """timm's AugReg IN-21k and MAE ViT-B/16 (Hugging Face hub files) and SETR's ViT-L/16."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(3)
        cls.images = torch.randn(2, 3, IMG, IMG)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name: str) -> str:
        return osp.join(self.tmp.name, name)

    def write_hub_files(self, tag: str, state_dict: Dict[str, torch.Tensor]) -> Dict[str, str]:
        """``model.safetensors`` and ``pytorch_model.bin`` as timm's ``push_to_hub`` writes
        them: the model's whole state dict (head included), safetensors with its metadata."""
        folder = self.path(tag)
        os.makedirs(folder)
        files = {'safetensors': osp.join(folder, 'model.safetensors'),
                 'timm': osp.join(folder, 'pytorch_model.bin')}
        save_file({k: v.contiguous() for k, v in state_dict.items()}, files['safetensors'],
                  metadata={'format': 'pt'})
        torch.save(state_dict, files['timm'])
        return files

    def convert(self, src: str, src_format: str, dst: str, **options: bool) -> dict:
        """What the converter saves for ``src`` with ``options`` (``drop_final_norm`` ...)."""
        name = '_'.join((osp.basename(osp.dirname(src)), src_format, dst, *sorted(options)))
        state_dict, report = convert_vit_checkpoint(src, src_format, dst, log=False, **options)
        out = self.path(name + '.pth')
        save_converted_checkpoint(state_dict, out, report, source=src)
        saved = torch.load(out, map_location='cpu', weights_only=True)
        saved['path'] = out
        return saved

    def check_hub_model(self, name: str, num_classes: int, config: str, seed: int) -> None:
        published = get_pretrained_cfg(name)
        self.assertEqual((published.hf_hub_id, published.num_classes),
                         (f'timm/{name}', num_classes))
        real = published_state_dict(name)
        timm_model = make_timm_vit(seed=seed, num_classes=num_classes)
        state_dict = timm_model.state_dict()
        self.assertEqual(fold_layers(state_dict), fold_layers(real))  # names, any depth
        head = ['head.bias', 'head.weight'] if num_classes else []
        self.assertEqual(sorted(k for k in real if k.startswith('head')), head)
        with torch.no_grad():
            expected = timm_model.forward_features(self.images)
        for src_format, src in self.write_hub_files(name, state_dict).items():
            with self.subTest(name=name, file=osp.basename(src)):
                saved = self.convert(src, src_format, 'mmpretrain')
                dropped = saved['meta']['dropped']
                self.assertEqual(sorted(sum(dropped.values(), [])), head)
                raw = config_backbone(config, saved['path'], 'mmpretrain', out_type='raw')
                with torch.no_grad():
                    torch.testing.assert_close(raw(self.images)[-1], expected)
                # The config's own pooling loads the same file strictly.
                config_backbone(config, saved['path'], 'mmpretrain')
                # Real size: every published key is converted (12 layers, the head dropped).
                converted, report = convert_vit_weights(real, src_format, 'mmpretrain')
                self.assertEqual(len(report.mapped), len(real) - len(head))
                self.assertEqual(fold_layers(converted), fold_layers(saved['state_dict']))
                self.assertEqual(converted['pos_embed'].shape, (1, 197, 768))
                self.assertEqual(converted['layers.11.ffn.layers.0.0.weight'].shape, (3072, 768))

    def test_augreg_in21k_hub_files(self):
        # The authors' vit-B: 21,843-class head, final norm, ImageNet mean / std in the configs.
        self.check_hub_model('vit_base_patch16_224.augreg_in21k', 21843, AUGREG_CONFIG, seed=11)

    def test_mae_hub_files(self):
        # The authors' mae-B: timm's conversion of MAE's pre-training weights, no head.
        self.check_hub_model('vit_base_patch16_224.mae', 0, MAE_CONFIG, seed=12)

    def test_setr_jx_vit_large_p16_384(self):
        # jx_vit_large_p16_384-b3be5167.pth (mmseg's SETR configs and the authors' SETR rows): a
        # raw state dict of timm's ViT-L/16 at 384 pixels (24x24 position grid + CLS) with its
        # 1000-class head, in torch's pre-1.6 file format. Here at the tiny size: 6x6 grid,
        # loaded at 8x8, as 24x24 at 384 pixels is loaded at 32x32 for 512-pixel crops.
        real = published_state_dict('vit_large_patch16_384', num_classes=1000)
        self.assertEqual(real['pos_embed'].shape, (1, 24 * 24 + 1, 1024))
        src_size, dst_size = 48, 64
        timm_model = make_timm_vit(seed=13, img_size=src_size, num_classes=1000)
        state_dict = timm_model.state_dict()
        self.assertEqual(fold_layers(state_dict), fold_layers(real))  # names, any depth
        folder = self.path('setr')
        os.makedirs(folder)
        src = osp.join(folder, 'jx_vit_large_p16_384-b3be5167.pth')
        torch.save(state_dict, src, _use_new_zipfile_serialization=False)
        saved = self.convert(src, 'timm', 'mmseg', drop_final_norm=True)
        self.assertEqual(sorted(sum(saved['meta']['dropped'].values(), [])),
                         ['head.bias', 'head.weight', 'norm.bias', 'norm.weight'])
        self.assertEqual(saved['state_dict']['pos_embed'].shape,
                         (1, (src_size // PATCH)**2 + 1, DIM))

        # timm's features before the final norm (SETR reads intermediate layers, no final norm),
        # at the file's size and at a larger one with the grid resized bilinearly as mmseg does.
        torch.manual_seed(4)
        images = {size: torch.randn(2, 3, size, size) for size in (src_size, dst_size)}
        expected = {}
        for size in (src_size, dst_size):
            with self.subTest(size=size):
                reference = make_timm_vit(seed=0, img_size=size, num_classes=1000)
                resized = dict(state_dict)
                resized['pos_embed'] = resample_abs_pos_embed(
                    state_dict['pos_embed'], [size // PATCH] * 2, [src_size // PATCH] * 2,
                    interpolation='bilinear', antialias=False)
                reference.load_state_dict(resized)
                model = config_backbone(SETR_CONFIG, saved['path'], 'mmseg', img_size=size)
                with torch.no_grad():
                    expected[size] = reference.forward_intermediates(
                        images[size], indices=list(range(DEPTH)), norm=False,
                        intermediates_only=True)
                    maps = model(images[size])
                self.assertEqual(len(maps), DEPTH)
                for ours, theirs in zip(maps, expected[size]):
                    torch.testing.assert_close(ours, theirs)

        # mmseg's own converter gives the same tensors (it keeps the final norm, which mmseg's
        # SETR backbone, final_norm=False, leaves out when it loads non-strictly).
        import mmseg
        vit2mmseg = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'model_converters',
                             'vit2mmseg.py')
        if not osp.isfile(vit2mmseg):
            self.skipTest("mmseg's tools/model_converters/vit2mmseg.py is not installed")
        theirs = load_script_module(vit2mmseg).convert_vit(dict(state_dict))
        self.assertEqual(sorted(set(theirs) - set(saved['state_dict'])),
                         ['ln1.bias', 'ln1.weight'])
        self.assertEqual(set(saved['state_dict']) - set(theirs), set())
        for key, value in saved['state_dict'].items():
            assert torch.equal(value, theirs[key]), key

        # mmseg's SETR backbone as its configs (and the authors' SETR rows) build it, patch_bias
        # and final_norm at their default False, loads vit2mmseg's file non-strictly and so
        # runs without the patch-embedding bias: --drop-patch-bias gives that for a strict load.
        theirs_path = osp.join(folder, 'vit_large_p16.pth')
        torch.save(theirs, theirs_path)
        stock = SEG_MODELS.build(dict(
            type='VisionTransformer', img_size=(dst_size, dst_size), patch_size=PATCH,
            embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS, mlp_ratio=MLP // DIM,
            out_indices=tuple(range(DEPTH)), norm_cfg=dict(type='LN', eps=1e-6),
            with_cls_token=True, interpolate_mode='bilinear',
            init_cfg=dict(type='Pretrained', checkpoint=theirs_path)))
        stock.init_weights()
        stock.eval()  # (mmseg's train() returns None)
        self.assertFalse(any('bias' in n for n, _ in stock.patch_embed.named_parameters()))
        no_bias = self.convert(src, 'timm', 'mmseg', drop_final_norm=True,
                               drop_patch_bias=True)
        self.assertEqual(no_bias['meta']['dropped']['patch-embedding bias (drop_patch_bias, for '
                                                    'patch_bias=False)'],
                         ['patch_embed.proj.bias'])
        ours = config_backbone(SETR_CONFIG, no_bias['path'], 'mmseg', img_size=dst_size,
                               patch_bias=False)
        with torch.no_grad():
            maps, stock_maps = ours(images[dst_size]), stock(images[dst_size])
        for mine, theirs_map, with_bias in zip(maps, stock_maps, expected[dst_size]):
            torch.testing.assert_close(mine, theirs_map)
            self.assertGreater((mine - with_bias).abs().max().item(), 1e-3)
        with self.assertRaisesRegex(ValueError, "drop_patch_bias is for mmseg's"):
            convert_vit_weights(state_dict, 'timm', 'mmpretrain', drop_patch_bias=True)

        # Real size: every key of the ViT-L file is converted.
        converted, report = convert_vit_weights(real, 'timm', 'mmseg', drop_final_norm=True)
        self.assertEqual(len(report.mapped), len(real) - 4)
        self.assertEqual(fold_layers(converted), fold_layers(saved['state_dict']))
        self.assertEqual(converted['layers.23.attn.attn.in_proj_weight'].shape, (3072, 1024))


def load_script_module(path: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
