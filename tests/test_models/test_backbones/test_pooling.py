"""``out_type='avg_prompts_patches'``: the authors' MAE pooling on the mmpretrain host."""
from unittest import TestCase

import torch
from mmengine.logging import MMLogger
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

import mmda_vpt  # noqa: F401

TINY_ARCH = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)


def build(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='DAVPTViT', _scope_='mmpretrain', arch=TINY_ARCH, img_size=32, patch_size=8,
               num_prompts=3, guided_layers=(-1, ), num_guided_prompts=5,
               out_type='avg_prompts_patches', norm_cfg=dict(type='LN', eps=1e-6))
    cfg.update(kwargs)
    return PRETRAIN_MODELS.build(cfg)


def randomize(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)


def manual_tokens(model, x):
    """VPT-Deep through the host's own blocks: ``[CLS, prompts, patches]`` after the final norm.

    Each layer's prompts replace the previous layer's right after the CLS token; the blocks are
    mmpretrain's ``TransformerEncoderLayer.forward``, not DA-VPT's block code.
    """
    tokens, resolution = model.patch_embed(x)
    tokens = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
    tokens = tokens + resize_pos_embed(model.pos_embed, model.patch_resolution, resolution,
                                       mode=model.interpolate_mode, num_extra_tokens=1)
    previous = 0
    for i, layer in enumerate(model.layers):
        prompts = model.prompts[str(i)].expand(x.shape[0], -1, -1)
        tokens = torch.cat([tokens[:, :1], prompts, tokens[:, 1 + previous:]], dim=1)
        previous = prompts.shape[1]
        tokens = layer(tokens)
    return model.ln1(tokens)


class TestAvgPromptsPatches(TestCase):

    def test_mean_over_prompts_and_patches_of_the_final_norm(self):
        model = build()
        randomize(model)
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        out = model(x)[0]
        tokens = manual_tokens(model, x)
        self.assertEqual(tokens.shape[1], 1 + 5 + 16)  # CLS, the last layer's 5 prompts, patches
        torch.testing.assert_close(out, tokens[:, 1:].mean(dim=1), rtol=1e-5, atol=1e-5)
        # Not the CLS token, not the patches alone.
        self.assertFalse(torch.allclose(out, tokens[:, 1 + 5:].mean(dim=1), atol=1e-3))
        self.assertFalse(torch.allclose(out, tokens[:, :].mean(dim=1), atol=1e-3))
        # No ln2: neither created nor expected in a checkpoint (MAE's has none).
        self.assertFalse(hasattr(model, 'ln2'))
        self.assertEqual(model.new_param_names(), ['prompts.0', 'prompts.1', 'prompts.2'])
        # Training mode gives the same features (the frozen blocks stay in eval mode).
        model.train()
        torch.testing.assert_close(model(x)[0], out, rtol=0, atol=0)

    def test_differs_from_avg_featmap(self):
        ours = build()
        randomize(ours)
        featmap = build(out_type='avg_featmap')
        state = ours.state_dict()
        self.assertEqual(set(featmap.state_dict()) - set(state), {'ln2.weight', 'ln2.bias'})
        state.update({k: v for k, v in featmap.state_dict().items() if k.startswith('ln2.')})
        featmap.load_state_dict(state)  # the same weights, plus its own ln2
        ours.eval()
        featmap.eval()
        x = torch.randn(4, 3, 32, 32)
        pooled, avg = ours(x)[0], featmap(x)[0]
        self.assertEqual(pooled.shape, avg.shape)
        tokens = manual_tokens(ours, x)
        # mmpretrain's avg_featmap: the patches' mean through ln2 (identity affine at start).
        expected = torch.nn.functional.layer_norm(tokens[:, 1 + 5:].mean(dim=1), (32, ),
                                                  featmap.ln2.weight, featmap.ln2.bias, 1e-6)
        torch.testing.assert_close(avg, expected, rtol=1e-5, atol=1e-5)
        self.assertGreater(float((pooled - avg).abs().max()), 0.1)

    def test_several_outputs_and_prompts_disabled(self):
        model = build(out_indices=(1, 2))
        randomize(model)
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        outs = model(x)
        self.assertEqual([tuple(o.shape) for o in outs], [(2, 32), (2, 32)])
        with model.prompts_disabled():  # no prompts: the mean over the patches
            plain = model(x)[-1]
            tokens = model.forward_blocks(
                self.embed(model, x), model.patch_resolution, model.ln1, [2])[0]
        torch.testing.assert_close(plain, tokens[:, 1:].mean(dim=1))

    @staticmethod
    def embed(model, x):
        tokens, _ = model.patch_embed(x)
        tokens = torch.cat([model.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return tokens + model.pos_embed

    def test_without_final_norm_warns(self):
        logger = MMLogger.get_current_instance()
        with self.assertLogs(logger, level='WARNING') as logs:
            build(final_norm=False)
        self.assertIn("out_type='avg_prompts_patches' with final_norm=False", logs.output[0])
        with self.assertRaisesRegex(ValueError, 'Unsupported `out_type` avg_prompts'):
            build(out_type='avg_prompts')
