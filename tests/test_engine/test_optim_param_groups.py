"""The authors' head initialisation and weight-decay groups as config: mmpretrain's
``ImageClassifier`` with ``DAVPTViT`` and ``LinearClsHead``, built through mmengine."""
import argparse
import os.path as osp
from typing import Dict
from unittest import TestCase

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from timm.layers import trunc_normal_

import mmda_vpt  # noqa: F401  (registers DAVPTViT)
from tests.toy_datasets import tiny_classifier_cfg
from tests.reference_code import reference_module
from tests.utils import reference_dir

HEAD_INIT = dict(type='TruncNormal', layer='Linear', std=0.02)


def classifier(num_classes: int = 100, head_init=None) -> torch.nn.Module:
    cfg = tiny_classifier_cfg(num_classes, learnable_cls_token=True, bias_tune='kv')
    if head_init is not None:
        cfg['head']['init_cfg'] = head_init
    return MODELS.build(cfg)


def param_decays(model: torch.nn.Module, wd: float, wd_head: float) -> Dict[str, float]:
    """Weight decay per trainable parameter with the authors' groups written as paramwise_cfg.

    As tools/gen_configs.py writes it: the base decay is the prompts' (the head's where the
    prompts get none) and each key's multiplier gives its group's decay; the CLS token takes
    the prompts' multiplier.
    """
    base = wd if wd else wd_head
    cfg = dict(
        optimizer=dict(type='AdamW', lr=5e-4, weight_decay=base),
        paramwise_cfg=dict(
            bias_decay_mult=0.0, norm_decay_mult=0.0, flat_decay_mult=0.0,
            custom_keys={
                'backbone.prompts': dict(decay_mult=wd / base),
                'backbone.cls_token': dict(decay_mult=wd / base),
                'head.fc.weight': dict(decay_mult=wd_head / base),
                'backbone.kv_bias': dict(decay_mult=0.0),
            }))
    wrapper = build_optim_wrapper(model, cfg)
    names = {id(param): name for name, param in model.named_parameters()}
    return {names[id(param)]: group['weight_decay']
            for group in wrapper.optimizer.param_groups for param in group['params']}


class TestHeadInit(TestCase):

    def test_trunc_normal_as_the_authors(self):
        """head.init_cfg TruncNormal(std=0.02): the authors' trunc_normal_(head.weight, std=.02)."""
        model = classifier(head_init=HEAD_INIT)
        torch.manual_seed(0)
        model.head.init_weights()
        torch.manual_seed(0)
        expected = trunc_normal_(torch.empty(100, 32), std=.02)  # timm's, as model_creator.py
        weight = model.head.fc.weight.detach()
        torch.testing.assert_close(weight, expected, rtol=0, atol=0)
        torch.testing.assert_close(model.head.fc.bias.detach(), torch.zeros(100))
        self.assertLess(abs(weight.std().item() - 0.02), 0.002)
        self.assertLessEqual(weight.abs().max().item(), 2.0)  # truncated at +-2 (both)

    def test_mmpretrain_default_differs(self):
        head = classifier().head
        self.assertEqual(head.init_cfg, dict(type='Normal', layer='Linear', std=0.01))


class TestDecayGroups(TestCase):

    def test_cls_token_decayed_biases_not(self):
        decays = param_decays(classifier(), wd=0.05, wd_head=5.0)
        self.assertEqual(set(decays), {'backbone.cls_token', 'backbone.kv_bias',
                                       'backbone.prompts.0', 'backbone.prompts.1',
                                       'head.fc.weight', 'head.fc.bias'})
        for name in ('backbone.cls_token', 'backbone.prompts.0', 'backbone.prompts.1'):
            self.assertAlmostEqual(decays[name], 0.05, msg=name)
        self.assertAlmostEqual(decays['head.fc.weight'], 5.0)
        self.assertEqual(decays['head.fc.bias'], 0.0)
        self.assertEqual(decays['backbone.kv_bias'], 0.0)

    def test_rows_without_prompt_decay(self):
        """wd 0 (vitb_dmlab, moco_flower102): the base is the head's, the CLS token gets none."""
        decays = param_decays(classifier(), wd=0.0, wd_head=0.05)
        for name in ('backbone.cls_token', 'backbone.prompts.0', 'backbone.kv_bias',
                     'head.fc.bias'):
            self.assertEqual(decays[name], 0.0, msg=name)
        self.assertAlmostEqual(decays['head.fc.weight'], 0.05)

    @pytest.mark.skipif(reference_dir() is None, reason='the authors\' DA-VPT code is not here')
    def test_same_groups_as_the_authors(self):
        """Their param_groups_weight_decay on a timm ViT trained as their CUB row, against ours."""
        import timm
        utils = reference_module('utils/utils.py')
        vit = timm.models.vision_transformer.VisionTransformer(
            img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=100)
        vit.other_prompt_tokens = torch.nn.Parameter(torch.zeros(2, 4, 32))
        trained = ('other_prompt_tokens', 'cls_token', 'patch_embed.proj.bias', 'qkv.bias',
                   'proj.bias', 'fc2.bias', 'norm1.weight', 'norm1.bias', 'norm2.bias',
                   'head.weight', 'head.bias')
        for name, param in vit.named_parameters():
            param.requires_grad = any(name == key or name.endswith('.' + key) for key in trained)
        args = argparse.Namespace(open_bias_decay=False, open_weight_decay=False,
                                  quiet_mode=True)
        groups = utils.param_groups_weight_decay(args, vit, weight_decay=0.05,
                                                 weight_decay_head=5.0)
        names = {id(param): name for name, param in vit.named_parameters()}
        theirs = {names[id(param)]: group['weight_decay']
                  for group in groups for param in group['params']}
        # Their rule: no decay for '.bias' names and <= 1-D tensors; 'head' names get wd_head;
        # everything else (prompts, the CLS token) the weight decay.
        for name, decay in theirs.items():
            param = dict(vit.named_parameters())[name]
            if name.endswith('.bias') or param.ndim <= 1:
                self.assertEqual(decay, 0.0, msg=name)
        ours = param_decays(classifier(), wd=0.05, wd_head=5.0)
        pairs = {'backbone.cls_token': 'cls_token', 'backbone.prompts.0': 'other_prompt_tokens',
                 'head.fc.weight': 'head.weight', 'head.fc.bias': 'head.bias',
                 'backbone.kv_bias': 'blocks.0.attn.qkv.bias'}
        for our_name, their_name in pairs.items():
            self.assertAlmostEqual(ours[our_name], theirs[their_name], msg=our_name)
        self.assertEqual(theirs['cls_token'], 0.05)
        self.assertEqual(theirs['head.weight'], 5.0)
