"""DA-VPT+ bias tuning by parts, and the authors' per-row part sets against their code."""
import os.path as osp
import re
import tempfile
from collections import Counter
from typing import Dict, List, Tuple
from unittest import TestCase

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.registry import MODELS as SEG_MODELS

import mmda_vpt  # noqa: F401
from mmda_vpt.models.backbones import PromptOptions
from mmda_vpt.models.backbones.bias_tuning import (AUTHORS_BIAS_KEYS, authors_bias_parts,
                                                   authors_flag)
from mmda_vpt.models.backbones.prompt_options import BIAS_PARTS
from tests.utils import assert_only_trainable_change, reference_dir
from .authors_code import (authors_args, build_authors_model, model_creator, read_yaml_row,
                           yaml_paths)

TINY_ARCH = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)


def build_pretrain(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='DAVPTViT', _scope_='mmpretrain', arch=TINY_ARCH, img_size=32, patch_size=8,
               num_prompts=2, guided_layers=(-1, ), norm_cfg=dict(type='LN', eps=1e-6))
    cfg.update(kwargs)
    return PRETRAIN_MODELS.build(cfg)


def build_seg(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='DAVPTViT', _scope_='mmseg', embed_dims=32, num_layers=3, num_heads=2,
               mlp_ratio=2, img_size=(32, 32), patch_size=8, out_indices=(1, 2), num_prompts=2,
               guided_layers=(-1, ), final_norm=True, norm_cfg=dict(type='LN', eps=1e-6))
    cfg.update(kwargs)
    return SEG_MODELS.build(cfg)


def randomize(model):
    """Non-trivial values everywhere (biases, norms), the tuned qkv rows synced after."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model._sync_kv_bias()


# Each part's tensors in the two hosts, by name (three layers).
PRETRAIN_NAMES = {
    'attn_out_bias': 'layers.{}.attn.proj.bias', 'fc1_bias': 'layers.{}.ffn.layers.0.0.bias',
    'fc2_bias': 'layers.{}.ffn.layers.1.bias', 'norm1_weight': 'layers.{}.ln1.weight',
    'norm1_bias': 'layers.{}.ln1.bias', 'norm2_weight': 'layers.{}.ln2.weight',
    'norm2_bias': 'layers.{}.ln2.bias', 'patch_embed_bias': 'patch_embed.projection.bias',
    'final_norm_weight': 'ln1.weight', 'final_norm_bias': 'ln1.bias'}
SEG_NAMES = {
    'attn_out_bias': 'layers.{}.attn.attn.out_proj.bias',
    'fc1_bias': 'layers.{}.ffn.layers.0.0.bias', 'fc2_bias': 'layers.{}.ffn.layers.1.bias',
    'norm1_weight': 'layers.{}.ln1.weight', 'norm1_bias': 'layers.{}.ln1.bias',
    'norm2_weight': 'layers.{}.ln2.weight', 'norm2_bias': 'layers.{}.ln2.bias',
    'patch_embed_bias': 'patch_embed.projection.bias', 'final_norm_weight': 'ln1.weight',
    'final_norm_bias': 'ln1.bias'}
QKV_ROW = {'q_bias': 0, 'k_bias': 1, 'v_bias': 2}


def expected_names(part, names):
    if part in QKV_ROW:
        return {part}  # 'q_bias' ...: the tuned row's own parameter
    pattern = names[part]
    return {pattern.format(i) for i in range(3)} if '{}' in pattern else {pattern}


def fused_biases(model):
    return [model._block_parts(layer).qkv_bias for layer in model.layers]


class TestBiasParts(TestCase):

    def check_part(self, model, part, names, loss_fn):
        randomize(model)
        trainable = set(model.trainable_names())
        prompts = {n for n in trainable if n.startswith('prompts.')}
        self.assertEqual(trainable - prompts, expected_names(part, names))
        effective = [model._qkv_bias(i, model._block_parts(layer)).detach().clone()
                     for i, layer in enumerate(model.layers)]
        # As mmengine passes them: every parameter, with weight decay.
        assert_only_trainable_change(self, model, loss_fn, params=model.parameters())
        # The fused qkv bias stays; in the bias attention uses, only the tuned row moves.
        for i, layer in enumerate(model.layers):
            now = model._qkv_bias(i, model._block_parts(layer)).detach().view(3, -1)
            for row in range(3):
                moved = not torch.equal(now[row], effective[i].view(3, -1)[row])
                self.assertEqual(moved, QKV_ROW.get(part) == row, (part, i, row))

    def test_each_part_trains_exactly_its_tensor(self):
        head = torch.nn.Linear(32, 4)

        def classify(model):
            out = model(torch.randn(4, 3, 32, 32))[0]
            return F.cross_entropy(head(out), torch.tensor([0, 1, 2, 3]))

        def segment(model):
            return sum(o.square().mean() for o in model(torch.randn(2, 3, 32, 32)))

        for part in BIAS_PARTS:
            with self.subTest(host='mmpretrain', part=part):
                self.check_part(build_pretrain(bias_tune=(part, )), part, PRETRAIN_NAMES,
                                classify)
            with self.subTest(host='mmseg', part=part):
                self.check_part(build_seg(bias_tune=[part], patch_bias=True), part, SEG_NAMES,
                                segment)

    def test_tuned_qkv_rows(self):
        # 'kv' is ('k_bias', 'v_bias'): the same parameter, the same outputs.
        kv = build_pretrain(bias_tune='kv')
        parts = build_pretrain(bias_tune=('v_bias', 'k_bias'))
        self.assertEqual(parts.bias_tune, ('v_bias', 'k_bias'))
        self.assertEqual(parts.bias_parts, ('k_bias', 'v_bias'))
        self.assertEqual(kv.trainable_names(), parts.trainable_names())
        self.assertEqual(tuple(parts.kv_bias.shape), (3, 2, 32))
        parts.load_state_dict(kv.state_dict())
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(parts(x)[0], kv(x)[0], rtol=0, atol=0)
        # Other row sets have a parameter named after their rows, filled from a host
        # checkpoint's fused biases.
        for rows, name in ((('v_bias', ), 'v_bias'), (('q_bias', 'v_bias'), 'qv_bias'),
                           (('q_bias', 'k_bias', 'v_bias'), 'qkv_bias')):
            with self.subTest(name=name):
                model = build_pretrain(bias_tune=rows)
                self.assertEqual(model.tuned_qkv_name, name)
                self.assertIn(name, model.trainable_names())
                self.assertIn(name, model.new_param_names())
                host = build_pretrain()
                randomize(host)
                model.load_state_dict(host.state_dict())  # strict: the pre-hook fills it
                index = [QKV_ROW[r] for r in rows]
                for i, bias in enumerate(fused_biases(host)):
                    assert torch.equal(getattr(model, name)[i], bias.view(3, -1)[index])
                torch.testing.assert_close(model(x)[0], host(x)[0], rtol=0, atol=0)
        # No tuned row: no such parameter.
        fc2 = build_pretrain(bias_tune=('fc2_bias', ))
        self.assertIsNone(fc2.tuned_qkv_param)
        self.assertIsNone(fc2.kv_bias)

    def test_all_and_empty(self):
        # 'all' keeps its set: K/V, attention-output, fc2, both norms' biases, final norm bias.
        model = build_pretrain(bias_tune='all')
        names = set(model.trainable_names())
        expected = {'kv_bias', 'ln1.bias', 'prompts.0', 'prompts.1', 'prompts.2'} | {
            f'layers.{i}.{n}' for i in range(3)
            for n in ('attn.proj.bias', 'ffn.layers.1.bias', 'ln1.bias', 'ln2.bias')}
        self.assertEqual(names, expected)
        # ... and never fails on a host without a final norm.
        self.assertNotIn('ln1.bias', build_pretrain(bias_tune='all', final_norm=False)
                         .trainable_names())
        self.assertIsNone(PromptOptions(bias_tune=()).bias_tune)
        self.assertEqual(build_pretrain(bias_tune=[]).trainable_names(),
                         ['prompts.0', 'prompts.1', 'prompts.2'])

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, r"bias_tune names unknown parts \['fc3_bias'\]"):
            build_pretrain(bias_tune=('fc2_bias', 'fc3_bias'))
        with self.assertRaisesRegex(ValueError, r"bias_tune \('k_bias', 'k_bias'\) names a "
                                    'part twice'):
            build_pretrain(bias_tune=('k_bias', 'k_bias'))
        with self.assertRaisesRegex(ValueError, 'bias_tune must be one of'):
            build_pretrain(bias_tune='k_bias')
        with self.assertRaisesRegex(ValueError, "bias_tune part 'final_norm_bias': DAVPTViT "
                                    'has no such tensor'):
            build_pretrain(bias_tune=('final_norm_bias', ), final_norm=False)
        with self.assertRaisesRegex(ValueError, 'needs attention with qkv biases'):
            build_pretrain(bias_tune=('q_bias', ), qkv_bias=False)


def kind_of(name: str, rules: List[Tuple[str, str]]) -> str:
    """A trainable parameter's kind: the first ``(pattern, kind)`` rule its whole name matches."""
    for pattern, kind in rules:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, kind, name)
    raise AssertionError(f'unexpected trainable parameter {name}')


def our_kinds(model) -> Dict[str, int]:
    """Trainable elements of our backbone per kind (bias part, 'prompts', 'cls_token')."""
    kinds = Counter()
    rules = [(r'prompts\.\d+', 'prompts'), (r'cls_token', 'cls_token'),
             (r'patch_embed\.projection\.bias', 'patch_embed_bias'),
             (r'layers\.\d+\.attn\.proj\.bias', 'attn_out_bias'),
             (r'layers\.\d+\.ffn\.layers\.0\.0\.bias', 'fc1_bias'),
             (r'layers\.\d+\.ffn\.layers\.1\.bias', 'fc2_bias'),
             (r'layers\.\d+\.ln([12])\.(weight|bias)', r'norm\1_\2'),
             (r'ln1\.(weight|bias)', r'final_norm_\1')]
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name == model.tuned_qkv_name:  # (layers, rows, D): one kind per row
            for j, row in enumerate(model.tuned_qkv_rows):
                kinds['qkv'[row] + '_bias'] += param[:, j].numel()
            continue
        kinds[kind_of(name, rules)] += param.numel()
    return dict(kinds)


def their_kinds(model) -> Dict[str, int]:
    """Trainable elements of their ``PromptVisionTransformer`` per kind, the heads left out."""
    kinds = Counter()
    rules = [(r'(proxy|other)_prompt_tokens', 'prompts'), (r'cls_token', 'cls_token'),
             (r'patch_embed\.proj\.bias', 'patch_embed_bias'),
             (r'blocks\.\d+\.attn\.([qkv])\.bias', r'\1_bias'),
             (r'blocks\.\d+\.attn\.qkv\.bias', 'fused_qkv_bias'),
             (r'blocks\.\d+\.attn\.proj\.bias', 'attn_out_bias'),
             (r'blocks\.\d+\.mlp\.(fc[12])\.bias', r'\1_bias'),
             (r'blocks\.\d+\.(norm[12])\.(weight|bias)', r'\1_\2'),
             (r'norm\.(weight|bias)', r'final_norm_\1')]
    for name, param in model.named_parameters():
        if not param.requires_grad or name.split('.')[0] in ('head', 'vpt_head'):
            continue
        kinds[kind_of(name, rules)] += param.numel()
    return {k: v for k, v in kinds.items() if v}


class TestAuthorsBiasParts(TestCase):

    def test_mapping(self):
        self.assertEqual(authors_bias_parts({}), ())
        row = dict(bias_k='true', bias_v=True, bias_fc2='"true"', bias_proj='true',
                   bias_norm2='true', norm_norm1='true', bias_q='false', train_cls='true')
        self.assertEqual(authors_bias_parts(row),
                         ('k_bias', 'v_bias', 'attn_out_bias', 'fc2_bias', 'norm1_weight',
                          'norm1_bias', 'norm2_bias', 'patch_embed_bias'))
        self.assertTrue(authors_flag(row, 'train_cls'))
        self.assertFalse(authors_flag(row, 'bias_fc1'))
        self.assertEqual(authors_bias_parts(dict(learn_bias='true')),
                         tuple(p for p in BIAS_PARTS if p.endswith('_bias')))
        self.assertEqual(authors_bias_parts(dict(norm_norm='1')),
                         ('final_norm_weight', 'final_norm_bias'))
        for key, parts in AUTHORS_BIAS_KEYS.items():
            self.assertEqual(authors_bias_parts({key: 'on'}),
                             tuple(p for p in BIAS_PARTS if p in parts))
        with self.assertRaisesRegex(ValueError, "bias_k must be a boolean .*got 'maybe'"):
            authors_bias_parts(dict(bias_k='maybe'))


class TestAuthorsRows(TestCase):
    """Their code (``create_model``) against ours with :func:`authors_bias_parts`."""

    def setUp(self):
        self.ref = reference_dir()
        if self.ref is None:
            self.skipTest('the authors\' code (../shared/reference/DA-VPT) is absent')
        self.mc = model_creator(self.ref)

    def ours_for(self, args, row, their_model, **kwargs):
        cfg = dict(type='DAVPTViT', _scope_='mmpretrain', num_prompts=args.num_prompts,
                   guided_layers=tuple(their_model.p_idxs),
                   num_guided_prompts=args.proxy_prompt_len,
                   bias_tune=authors_bias_parts(row),
                   learnable_cls_token=authors_flag(row, 'train_cls'))
        cfg.update(kwargs)
        return PRETRAIN_MODELS.build(cfg)

    def tiny_pair(self, path):
        row = read_yaml_row(path)
        # A MoCo row builds its ViT from a local checkpoint: the same parameters as vit-B.
        args = authors_args(self.mc, path, mask=False, model_name='vit-B')
        theirs = build_authors_model(self.mc, args, tiny=True)
        ours = self.ours_for(args, row, theirs, img_size=32, patch_size=16,
                             arch=dict(embed_dims=32, num_layers=12, num_heads=2,
                                       feedforward_channels=128))
        return their_kinds(theirs), our_kinds(ours)

    def test_every_row_trains_the_same_tensors(self):
        paths = yaml_paths(self.ref)
        self.assertEqual(len(paths), 61)
        for path in paths:
            with self.subTest(row=osp.relpath(path, osp.join(self.ref, 'configs'))):
                theirs, ours = self.tiny_pair(path)
                self.assertEqual(ours, theirs)

    def test_switches_no_row_uses(self):
        base = read_yaml_row(osp.join(self.ref, 'configs', 'fgvc', 'vitb_cub200.yaml'))
        with tempfile.TemporaryDirectory() as tmp:
            for change in (dict(bias_q='true'), dict(bias_fc1='true'),
                           dict(bias_norm1='true', norm_norm1='false'), dict(bias_norm='true'),
                           dict(norm_norm2='true'), dict(norm_norm='true'),
                           dict(learn_bias='true')):
                with self.subTest(**change):
                    path = osp.join(tmp, 'row.yaml')
                    with open(path, 'w') as f:
                        f.writelines(f'{k}:{v}\n' for k, v in {**base, **change}.items())
                    theirs, ours = self.tiny_pair(path)
                    if 'learn_bias' in change:
                        # Their 'bias' pattern also releases the fused qkv.bias, which their
                        # forward never reads (it runs the split q, k, v layers).
                        self.assertEqual(theirs.pop('fused_qkv_bias'), 12 * 3 * 32)
                    self.assertEqual(ours, theirs)

    def test_cub_vitb_trainable_count(self):
        # Their CUB row on the real ViT-B/16 (random weights): 158,208 trainable backbone
        # parameters, prompts included; ours with the same options.
        path = osp.join(self.ref, 'configs', 'fgvc', 'vitb_cub200.yaml')
        row = read_yaml_row(path)
        args = authors_args(self.mc, path, mask=False)
        theirs = build_authors_model(self.mc, args)
        their_count = sum(p.numel() for n, p in theirs.named_parameters()
                          if p.requires_grad and n.split('.')[0] not in ('head', 'vpt_head'))
        ours = self.ours_for(args, row, theirs, arch='b', img_size=224, patch_size=16)
        self.assertEqual(ours.param_summary()[0], their_count)
        self.assertEqual(our_kinds(ours), their_kinds(theirs))
        self.assertEqual(their_count, 158208)  # the measurement, as a cross-check
        self.assertEqual(authors_bias_parts(row),
                         ('k_bias', 'v_bias', 'attn_out_bias', 'fc2_bias', 'norm1_weight',
                          'norm1_bias', 'norm2_bias', 'patch_embed_bias'))
