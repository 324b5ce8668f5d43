"""Tests of the DAVPTViT backbones (mmpretrain and mmsegmentation hosts)."""
import copy
import os.path as osp
import tempfile
from unittest import TestCase

import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import VisionTransformer as PretrainViT
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.models.backbones import VisionTransformer as SegViT
from mmseg.registry import MODELS as SEG_MODELS

import mmda_vpt  # noqa: F401
from mmda_vpt.engine.hooks.trainable_checkpoint_hook import (load_trainable_checkpoint,
                                                             trainable_state_dict)
from mmda_vpt.models.backbones import DAVPTViT, DAVPTViTSeg
from mmda_vpt.utils.model_access import PromptedBackbone, get_davpt_backbone
from tests.utils import assert_only_trainable_change

TINY_ARCH = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)


def pretrain_cfg(**kwargs):
    cfg = dict(type='DAVPTViT', _scope_='mmpretrain', arch=TINY_ARCH, img_size=32, patch_size=8, num_prompts=4,
               guided_layers=(-1, ), norm_cfg=dict(type='LN', eps=1e-6))
    cfg.update(kwargs)
    return cfg


def seg_cfg(**kwargs):
    cfg = dict(type='DAVPTViT', _scope_='mmseg', embed_dims=32, num_layers=3, num_heads=2, mlp_ratio=2,
               img_size=(32, 32), patch_size=8, out_indices=(1, 2), num_prompts=4,
               guided_layers=(-1, ), final_norm=True, norm_cfg=dict(type='LN', eps=1e-6))
    cfg.update(kwargs)
    return cfg


def build_pretrain(**kwargs) -> DAVPTViT:
    torch.manual_seed(0)
    model = PRETRAIN_MODELS.build(pretrain_cfg(**kwargs))
    model.init_weights()
    return model


def build_seg(**kwargs) -> DAVPTViTSeg:
    torch.manual_seed(0)
    model = SEG_MODELS.build(seg_cfg(**kwargs))
    model.init_weights()
    return model


def randomize_frozen(model: torch.nn.Module) -> None:
    """Give every parameter (biases and norms too) non-trivial values."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    if getattr(model, 'kv_bias', None) is not None:
        model._sync_kv_bias()


class TestDAVPTViT(TestCase):

    def test_structure(self):
        model = build_pretrain(num_prompts=3, guided_layers=(0, -1), num_guided_prompts=5)
        self.assertEqual(model.guided_layers, (0, 2))
        self.assertEqual(model.prompt_counts, (5, 3, 5))
        self.assertEqual(model.num_prefix_tokens, 1)
        self.assertEqual(sorted(model.trainable_names()), ['prompts.0', 'prompts.1', 'prompts.2'])

        model = build_pretrain(bias_tune='kv', learnable_cls_token=True)
        self.assertEqual(sorted(model.trainable_names()),
                         ['cls_token', 'kv_bias', 'prompts.0', 'prompts.1', 'prompts.2'])
        self.assertEqual(tuple(model.kv_bias.shape), (3, 2, 32))

        model = build_pretrain(bias_tune='all')
        names = set(model.trainable_names())
        for i in range(3):
            self.assertTrue({f'layers.{i}.attn.proj.bias', f'layers.{i}.ffn.layers.1.bias',
                             f'layers.{i}.ln1.bias', f'layers.{i}.ln2.bias'} <= names)
            self.assertNotIn(f'layers.{i}.attn.qkv.bias', names)
            self.assertNotIn(f'layers.{i}.attn.qkv.weight', names)
        self.assertIn('ln1.bias', names)  # the final norm
        self.assertNotIn('cls_token', names)

        plain = build_pretrain(num_prompts=0, guided_layers=())
        self.assertEqual(plain.trainable_names(), [])

    def test_init_weights(self):
        model = build_pretrain(num_prompts=20)
        bound = (6.0 / (3 * 8 * 8 + 32))**0.5
        for prompt in model.prompts.values():
            self.assertLessEqual(float(prompt.abs().max()), bound)
            self.assertGreater(float(prompt.abs().max()), bound * 0.5)
        xavier = build_pretrain(prompt_init='xavier')
        self.assertEqual(xavier.prompt_init, 'xavier')

        # Strict pre-trained loading: a host checkpoint fits, prompts are the only new keys,
        # and the tuned K/V biases start from the checkpoint's fused qkv biases.
        host = PretrainViT(arch=TINY_ARCH, img_size=32, patch_size=8,
                           norm_cfg=dict(type='LN', eps=1e-6))
        randomize_frozen(host)
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'host.pth')
            torch.save(host.state_dict(), path)
            model = build_pretrain(bias_tune='kv', init_cfg=dict(type='Pretrained',
                                                                 checkpoint=path))
            for i, layer in enumerate(host.layers):
                assert torch.equal(model.layers[i].attn.qkv.weight, layer.attn.qkv.weight)
                assert torch.equal(model.kv_bias[i].flatten(), layer.attn.qkv.bias[32:])

            prefixed = {'backbone.' + k: v for k, v in host.state_dict().items()}
            prefixed['head.fc.weight'] = torch.zeros(2, 32)
            torch.save({'state_dict': prefixed}, path)
            model = build_pretrain(init_cfg=dict(type='Pretrained', checkpoint=path,
                                                 prefix='backbone.'))
            assert torch.equal(model.pos_embed, host.pos_embed)

    def test_forward(self):
        # num_prompts=0 is the host ViT itself.
        host = PretrainViT(arch=TINY_ARCH, img_size=32, patch_size=8, out_type='raw',
                           layer_scale_init_value=0.1, norm_cfg=dict(type='LN', eps=1e-6))
        randomize_frozen(host)
        model = build_pretrain(num_prompts=0, guided_layers=(), out_type='raw',
                               layer_scale_init_value=0.1)
        model.load_state_dict(host.state_dict())
        host.eval()
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(model(x)[0], host(x)[0], rtol=0, atol=1e-5)

        # Prompts change the output; shapes follow the host's out_type.
        model = build_pretrain(out_type='featmap', out_indices=(0, 2))
        for size in [(224, 224), (384, 384), (512, 512), (96, 160)]:
            outs = model(torch.randn(1, 3, *size))
            self.assertEqual(len(outs), 2)
            self.assertEqual(tuple(outs[1].shape), (1, 32, size[0] // 8, size[1] // 8))
        model = build_pretrain(out_type='cls_token')
        self.assertEqual(tuple(model(x)[0].shape), (2, 32))
        model = build_pretrain(out_type='avg_featmap')
        self.assertEqual(tuple(model(x)[0].shape), (2, 32))

    def test_frozen_modules_stay_in_eval(self):
        model = build_pretrain(drop_rate=0.5, drop_path_rate=0.5, prompt_dropout=0.3)
        model.train()
        self.assertTrue(model.training)
        self.assertTrue(model.prompt_dropout.training)
        for name, module in model.named_modules():
            if module is not model and module is not model.prompt_dropout:
                self.assertFalse(module.training, name)
        no_drop = build_pretrain(drop_rate=0.5, drop_path_rate=0.5)
        no_drop.train()
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(no_drop(x)[0], no_drop(x)[0], rtol=0, atol=0)

    def test_frozen_drop_path(self):
        model = build_pretrain(frozen_drop_path_rate=0.3)
        randomize_frozen(model)
        self.assertEqual(len(model.frozen_drop_path_rates), 3)
        self.assertEqual(model.frozen_drop_path_rates[0], 0.0)
        self.assertAlmostEqual(model.frozen_drop_path_rates[-1], 0.3, places=6)
        plain = build_pretrain()
        plain.load_state_dict(model.state_dict())
        x = torch.randn(8, 3, 32, 32)
        model.eval()
        plain.eval()
        with torch.no_grad():  # evaluation: no stochastic depth
            torch.testing.assert_close(model(x)[0], plain(x)[0], rtol=0, atol=0)
        model.train()
        plain.train()
        torch.manual_seed(0)
        first = model(x)[0]
        second = model(x)[0]
        self.assertFalse(torch.equal(first, second))  # stochastic in training
        self.assertFalse(torch.equal(first, plain(x)[0]))
        # Some samples keep every branch of the last layer, others lose one: per sample.
        first.sum().backward()
        for name, param in model.named_parameters():
            if name not in model.trainable_names():
                self.assertIsNone(param.grad, name)
        self.assertIsNotNone(model.prompts['2'].grad)
        with self.assertRaisesRegex(ValueError, r'frozen_drop_path_rate must be in \[0, 1\)'):
            build_pretrain(frozen_drop_path_rate=1.0)
        seg = build_seg(frozen_drop_path_rate=0.2)
        self.assertAlmostEqual(seg.frozen_drop_path_rates[-1], 0.2, places=6)

    def test_only_params_are_updated(self):
        for bias_tune in (None, 'kv', 'all'):
            with self.subTest(bias_tune=bias_tune):
                model = build_pretrain(bias_tune=bias_tune, num_prompts=2)
                randomize_frozen(model)
                head = torch.nn.Linear(32, 5)
                assert_only_trainable_change(
                    self, model,
                    lambda m: F.cross_entropy(head(m(torch.randn(4, 3, 32, 32))[0]),
                                              torch.tensor([0, 1, 2, 3])),
                    params=[p for p in model.parameters() if p.requires_grad] +
                    list(head.parameters()))

    def test_taps(self):
        model = build_pretrain(num_prompts=3, guided_layers=(1, 2), num_guided_prompts=4,
                               bias_tune='kv')
        randomize_frozen(model)
        x = torch.randn(2, 3, 32, 32)
        model.eval()
        eval_out = model(x)[0]
        self.assertIsNone(model.taps)
        model.train()
        train_out = model(x)[0]
        torch.testing.assert_close(train_out, eval_out, rtol=0, atol=0)
        taps = model.taps
        self.assertEqual(taps.guided_layers, (1, 2))
        self.assertEqual(len(taps.prompt_query), 2)
        self.assertEqual(tuple(taps.prompt_query[0].shape), (4, 32))
        self.assertEqual(tuple(taps.patch_attn[0].shape), (2, 16, 32))
        self.assertEqual(tuple(taps.patch_input[1].shape), (2, 16, 32))
        self.assertEqual(tuple(taps.cls_query[0].shape), (2, 32))
        # The kept taps own their storage: a view would keep the layer's whole (B, T, 3D) qkv
        # alive between the forward and the loss (and defeat with_cp).
        for tap in taps.cls_query:
            self.assertEqual(tap.untyped_storage().nbytes(), tap.numel() * tap.element_size())
        self.assertEqual(tuple(taps.cls_final.shape), (2, 32))
        torch.testing.assert_close(taps.cls_final, train_out)
        # The prompt query is what attention computes for the prompt tokens.
        layer = model.layers[1]
        bias = torch.cat([layer.attn.qkv.bias[:32], model.kv_bias[1].flatten()])
        expected = F.linear(layer.ln1(model.prompts['1']), layer.attn.qkv.weight[:32], bias[:32])
        torch.testing.assert_close(taps.prompt_query[0], expected)
        assert torch.equal(taps.prompt_raw[1], model.prompts['2'])

    def test_attention_maps(self):
        model = build_pretrain(num_prompts=3)
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        plain = model(x)[0]
        with model.record_attention(layers=(0, -1)) as maps:
            recorded = model(x)[0]
        torch.testing.assert_close(recorded, plain, rtol=1e-5, atol=1e-5)
        self.assertEqual(sorted(maps), [0, 2])
        self.assertEqual(tuple(maps[2].shape), (2, 2, 1 + 3, 1 + 3 + 16))
        torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 2, 4))
        self.assertIsNone(model.attention_recorder.layers)

    def test_activation_checkpointing(self):
        model = build_pretrain(with_cp=True)
        reference = copy.deepcopy(model)
        reference.with_cp = False
        x = torch.randn(2, 3, 32, 32)
        model.train()
        reference.train()
        out, ref = model(x)[0], reference(x)[0]
        torch.testing.assert_close(out, ref)
        out.sum().backward()
        ref.sum().backward()
        for p, q in zip(model.prompts.values(), reference.prompts.values()):
            torch.testing.assert_close(p.grad, q.grad)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, 'guided layer 3 is outside the depth'):
            build_pretrain(guided_layers=(3, ))
        with self.assertRaisesRegex(ValueError, 'guided layer -4 is outside the depth'):
            build_pretrain(guided_layers=(-4, ))
        with self.assertRaisesRegex(ValueError, 'num_prompts must be a non-negative int'):
            build_pretrain(num_prompts=-1)
        with self.assertRaisesRegex(ValueError, 'num_guided_prompts must be a non-negative'):
            build_pretrain(num_guided_prompts=-2)
        with self.assertRaisesRegex(ValueError, "unknown arch 'gigantic'"):
            build_pretrain(arch='gigantic')
        with self.assertRaisesRegex(ValueError, 'bias_tune must be one of'):
            build_pretrain(bias_tune='q')
        host = PretrainViT(arch=TINY_ARCH, img_size=32, patch_size=8)
        state = host.state_dict()
        del state['layers.1.attn.proj.weight']
        state['layers.9.extra'] = torch.zeros(1)
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'bad.pth')
            torch.save(state, path)
            with self.assertRaisesRegex(
                    KeyError, r"missing keys: \['layers.1.attn.proj.weight'\]; "
                    r"unexpected keys: \['layers.9.extra'\]"):
                build_pretrain(init_cfg=dict(type='Pretrained', checkpoint=path))

    def test_trainable_checkpoint(self):
        # The real ViT-B/16 with 10 prompts per layer: the trainable part is tiny.
        model = PRETRAIN_MODELS.build(
            dict(type='DAVPTViT', _scope_='mmpretrain', arch='b', num_prompts=10))
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'prompts.pth')
            torch.save(trainable_state_dict(model), path)
            self.assertLess(osp.getsize(path), 2 * 1024 * 1024)

        model = build_pretrain(bias_tune='kv')
        trained = copy.deepcopy(model)
        with torch.no_grad():
            for p in trained.parameters():
                if p.requires_grad:
                    p.add_(1.0)
        state = trainable_state_dict(trained)
        load_trainable_checkpoint(model, state)
        for (name, p), q in zip(model.named_parameters(), trained.parameters()):
            self.assertTrue(torch.equal(p, q), name)
        del state['kv_bias']
        state['bogus'] = torch.zeros(1)
        with self.assertRaisesRegex(ValueError, r"^trainable-only checkpoint does not fit "
                                    r"DAVPTViT \(the given dict\) .*missing keys: \['kv_bias'\]; "
                                    r"unexpected keys: \['bogus'\]$"):
            load_trainable_checkpoint(model, state)
        state = trainable_state_dict(trained)
        state['prompts.0'] = state['prompts.0'][:2]
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with self.assertRaisesRegex(ValueError, r'shape mismatches: prompts\.0 \(2, 32\) in the '
                                    r'checkpoint, \(4, 32\) in the model; missing keys: none'):
            load_trainable_checkpoint(model, state)
        for key, value in model.state_dict().items():  # left unchanged
            assert torch.equal(value, before[key]), key


class TestDAVPTViTSeg(TestCase):

    def test_structure(self):
        model = build_seg(bias_tune='all', guided_layers=(1, ))
        self.assertIsInstance(model, DAVPTViTSeg)
        self.assertEqual(model.guided_layers, (1, ))
        names = set(model.trainable_names())
        self.assertIn('kv_bias', names)
        self.assertIn('layers.0.attn.attn.out_proj.bias', names)
        self.assertIn('layers.2.ffn.layers.1.bias', names)
        self.assertNotIn('layers.0.attn.attn.in_proj_bias', names)
        no_cls = build_seg(with_cls_token=False)
        self.assertEqual(no_cls.num_prefix_tokens, 0)

    def test_forward(self):
        host = SegViT(embed_dims=32, num_layers=3, num_heads=2, mlp_ratio=2, img_size=(32, 32),
                      patch_size=8, out_indices=(1, 2), final_norm=True,
                      norm_cfg=dict(type='LN', eps=1e-6))
        randomize_frozen(host)
        model = build_seg(num_prompts=0, guided_layers=())
        model.load_state_dict(host.state_dict())
        host.eval()
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        for out, ref in zip(model(x), host(x)):
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)

        model = build_seg(num_prompts=5, img_size=(512, 512))
        for size in [(512, 512), (480, 480), (96, 160)]:
            outs = model(torch.randn(1, 3, *size))
            self.assertEqual(len(outs), 2)
            self.assertEqual(tuple(outs[0].shape), (1, 32, size[0] // 8, size[1] // 8))
        model.train()
        model(torch.randn(2, 3, 64, 64))
        self.assertEqual(tuple(model.taps.patch_final.shape), (2, 64, 32))
        self.assertEqual(model.taps.patch_resolution, (8, 8))

    def test_init_weights_resizes_pos_embed(self):
        host = SegViT(embed_dims=32, num_layers=3, num_heads=2, mlp_ratio=2, img_size=(32, 32),
                      patch_size=8, final_norm=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'host.pth')
            torch.save(host.state_dict(), path)
            model = build_seg(img_size=(64, 48), init_cfg=dict(type='Pretrained',
                                                               checkpoint=path))
            self.assertEqual(tuple(model.pos_embed.shape), (1, 1 + 8 * 6, 32))
            assert torch.equal(model.pos_embed[:, 0], host.pos_embed[:, 0])
            state = host.state_dict()
            del state['layers.0.ln1.weight']
            torch.save(state, path)
            with self.assertRaisesRegex(KeyError, r"missing keys: \['layers.0.ln1.weight'\]"):
                build_seg(init_cfg=dict(type='Pretrained', checkpoint=path))

    def test_only_params_are_updated(self):
        model = build_seg(bias_tune='kv')
        randomize_frozen(model)
        assert_only_trainable_change(
            self, model, lambda m: sum(o.square().mean() for o in m(torch.randn(2, 3, 32, 32))))


class TestPromptedBackbone(TestCase):
    """The interface through which hooks and tools reach a DA-VPT backbone."""

    def test_both_hosts_implement_it(self):
        self.assertIsInstance(build_pretrain(), PromptedBackbone)
        self.assertIsInstance(build_seg(), PromptedBackbone)

    def test_stock_backbones_do_not(self):
        self.assertNotIsInstance(
            PretrainViT(arch=TINY_ARCH, img_size=32, patch_size=8), PromptedBackbone)
        model = torch.nn.Module()
        model.backbone = SegViT(embed_dims=32, num_layers=1, num_heads=2, img_size=(32, 32),
                                patch_size=8)
        with self.assertRaisesRegex(TypeError, 'my tool needs a model whose backbone is '
                                    'DAVPTViT, but Module has VisionTransformer'):
            get_davpt_backbone(model, 'my tool')
