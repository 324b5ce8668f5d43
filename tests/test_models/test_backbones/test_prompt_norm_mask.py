"""``prompt_norm='l2'`` and ``prompt_attn_mask='patches_only'``: manual computation, the
authors' own block and normalization, and the default left as it was."""
import argparse
import types
from functools import partial
from unittest import TestCase, mock

import torch
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
import torch.nn as nn
import torch.nn.functional as F

import mmda_vpt  # noqa: F401
from mmda_vpt.models.backbones import DeepPrompts, PromptOptions
from mmda_vpt.models.backbones.prompts import patches_only_mask
from mmda_vpt.checkpoints.vit_host_keys import timm_to_host
from tests.utils import reference_dir
from .authors_code import authors_args, build_authors_model, model_creator, yaml_paths
from .test_bias_tuning import build_pretrain, build_seg, randomize

OPTION_SETS = [dict(), dict(prompt_norm='l2'), dict(prompt_attn_mask='patches_only'),
               dict(prompt_norm='l2', prompt_attn_mask='patches_only')]


def embedded(model, seed=2, batch=2):
    """Random ``[CLS, patches]`` tokens for the tiny ViTs (32x32 images, patch 8: 16 patches)."""
    torch.manual_seed(seed)
    return torch.randn(batch, model.num_prefix_tokens + 16, 32)


def manual_blocks(model, x, prompt_norm=None, prompt_attn_mask=None):
    """The blocks written out: prompts replaced in every layer, an explicit softmax with -inf
    where a prompt's query meets a prefix token or a prompt, the final norm; prompts kept."""
    prefix = model.num_prefix_tokens
    old = 0
    for i, layer in enumerate(model.layers):
        parts = model._block_parts(layer)
        prompts = model.prompts[str(i)]
        if prompt_norm == 'l2':
            prompts = prompts / prompts.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        count = prompts.shape[0]
        x = torch.cat([x[:, :prefix], prompts.expand(x.shape[0], -1, -1),
                       x[:, prefix + old:]], dim=1)
        old = count
        batch, tokens, dim = x.shape
        heads = parts.num_heads
        qkv = F.linear(parts.norm1(x), parts.qkv_weight, parts.qkv_bias)
        q, k, v = qkv.view(batch, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-2, -1) / (dim // heads)**0.5
        if prompt_attn_mask == 'patches_only':
            additive = torch.zeros(tokens, tokens)
            additive[prefix:prefix + count, :prefix + count] = float('-inf')
            logits = logits + additive
        out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, dim)
        x = x + parts.layer_scale(parts.proj(out))
        x = parts.ffn(parts.norm2(x), identity=x)
    return model.ln1(x)


class TestPromptNormAndMask(TestCase):

    def forward_all(self, model, x, strip=False):
        last = len(model.layers) - 1
        return model.forward_blocks(x, (4, 4), model.ln1, (last, ), strip_prompts=strip)[0]

    def test_against_manual_computation(self):
        for build in (build_pretrain, build_seg):
            for options in OPTION_SETS:
                with self.subTest(host=build.__name__, **options):
                    model = build(num_guided_prompts=3, **options).eval()
                    randomize(model)
                    x = embedded(model)
                    with torch.no_grad():
                        ours = self.forward_all(model, x)
                        expected = manual_blocks(model, x, **options)
                    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)

    def test_default_is_the_paper(self):
        """Off by default; explicit None gives bit-identical outputs and no mask."""
        self.assertEqual((PromptOptions().prompt_norm, PromptOptions().prompt_attn_mask),
                         (None, None))
        for build in (build_pretrain, build_seg):
            with self.subTest(host=build.__name__):
                plain = build().eval()
                explicit = build(prompt_norm=None, prompt_attn_mask=None).eval()
                self.assertIsNone(plain._attn_mask(0, 19, torch.device('cpu')))
                self.assertIs(plain.prompts.tokens(0), plain.prompts['0'])
                img = torch.randn(2, 3, 32, 32)
                with torch.no_grad():
                    out_plain, out_explicit = plain(img), explicit(img)
                for a, b in zip(out_plain, out_explicit):
                    a = a if isinstance(a, torch.Tensor) else a[-1]
                    b = b if isinstance(b, torch.Tensor) else b[-1]
                    self.assertTrue(torch.equal(a, b))

    def test_options_change_what_they_should(self):
        model = build_pretrain().eval()
        randomize(model)
        x = embedded(model)
        with torch.no_grad():
            base = self.forward_all(model, x)
            model.prompt_attn_mask = 'patches_only'
            masked = self.forward_all(model, x)
            model.prompt_attn_mask = None
            model.prompts.norm = 'l2'
            normed = self.forward_all(model, x)
        # The mask changes only the prompt rows of each block: VPT-Deep drops them, so only the
        # last block's prompt outputs differ.
        torch.testing.assert_close(masked[:, :1], base[:, :1])
        torch.testing.assert_close(masked[:, 3:], base[:, 3:])
        self.assertFalse(torch.allclose(masked[:, 1:3], base[:, 1:3], atol=1e-4))
        # The blocks are pre-norm: LayerNorm undoes the prompts' scale but for its eps, so the
        # normalization reaches the prefix and patch tokens only through that eps; the last
        # block's prompt outputs (their residual) and the taps see it fully.
        torch.testing.assert_close(normed[:, :1], base[:, :1], atol=1e-3, rtol=1e-3)
        self.assertFalse(torch.equal(normed[:, :1], base[:, :1]))
        self.assertFalse(torch.allclose(normed[:, 1:3], base[:, 1:3], atol=1e-2))

    def test_l2_prompts_in_training(self):
        """Unit-norm tokens enter the blocks (before the dropout) and reach the taps; the
        gradient flows to the raw parameters."""
        model = build_pretrain(prompt_norm='l2', prompt_dropout=0.0).train()
        for i in range(3):
            with torch.no_grad():
                model.prompts[str(i)].mul_(5.0)
            torch.testing.assert_close(model.prompts.tokens(i).norm(dim=-1), torch.ones(2))
        seen = []
        original = model.prompts.insert
        with mock.patch.object(model.prompts, 'insert',
                               lambda x, i, replace: seen.append(original(x, i, replace))
                               or seen[-1]):
            out = model(torch.randn(2, 3, 32, 32))
        for tokens in seen:
            torch.testing.assert_close(tokens[:, 1:3].norm(dim=-1), torch.ones(2, 2))
        torch.testing.assert_close(model.taps.prompt_raw[0].norm(dim=-1), torch.ones(2))
        out[-1].sum().backward()
        self.assertIsNotNone(model.prompts['2'].grad)

    def test_recorded_maps_follow_the_mask(self):
        model = build_pretrain(prompt_attn_mask='patches_only', num_guided_prompts=3).eval()
        randomize(model)
        with torch.no_grad(), model.record_attention() as maps:
            model(torch.randn(2, 3, 32, 32))
        for layer, count in enumerate(model.prompt_counts):
            attn = maps[layer]  # (B, heads, 1 + count, 1 + count + 16)
            torch.testing.assert_close(attn.sum(-1), torch.ones_like(attn[..., 0]))
            self.assertTrue(torch.all(attn[:, :, 1:, :1 + count] == 0))
            self.assertTrue(torch.all(attn[:, :, 0] > 0))  # the CLS row is unmasked
        self.assertTrue(torch.equal(patches_only_mask(1, 2, 5),
                                    torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 1, 1],
                                                  [0, 0, 0, 1, 1], [1, 1, 1, 1, 1],
                                                  [1, 1, 1, 1, 1]], dtype=torch.bool)))

    def test_with_checkpointing(self):
        kwargs = dict(prompt_norm='l2', prompt_attn_mask='patches_only')
        plain, cp = build_pretrain(**kwargs).train(), build_pretrain(with_cp=True, **kwargs).train()
        img = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(plain(img)[-1], cp(img)[-1])

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, 'prompt_norm must be one of'):
            PromptOptions(prompt_norm='layer')
        with self.assertRaisesRegex(ValueError, 'prompt_attn_mask must be one of'):
            PromptOptions(prompt_attn_mask=True)
        with self.assertRaisesRegex(ValueError, 'leave no patch'):
            patches_only_mask(1, 4, 5)
        with self.assertRaisesRegex(ValueError, 'prompt norm must be'):
            DeepPrompts((2, ), 32, (8, 8), 1, norm='l1')


class TestAgainstAuthorsCode(TestCase):
    """Their ``vpt_norm`` module and their masked ``VPTBlock`` beside ours, same weights."""

    def setUp(self):
        ref = reference_dir()
        if ref is None:
            self.skipTest("the authors' code (../shared/reference/DA-VPT) is absent")
        self.mc = model_creator(ref)

    def test_l2_norm_is_their_vpt_norm(self):
        owner = types.SimpleNamespace(args=argparse.Namespace(vpt_norm='l2'), embed_dim=32)
        self.mc.PromptVisionTransformer._setup_normalization(owner)
        prompts = DeepPrompts((3, 3), 32, (8, 8), 1, norm='l2')
        with torch.no_grad():
            prompts['1'].mul_(7.0)
            prompts['1'][0].zero_()  # their eps for a zero token
        for i in (0, 1):
            torch.testing.assert_close(prompts.tokens(i), owner.vpt_norm(prompts[str(i)]),
                                       atol=0, rtol=0)

    def test_masked_block_is_their_block(self):
        generate = self.mc.VPTAttention._generate_mask

        def on_cpu(self, L, S, length, device):  # theirs allocates on CUDA
            return generate(self, L, S, length, torch.device('cpu'))

        for mask in ('patches_only', None):
            with self.subTest(mask=mask):
                model = build_pretrain(prompt_attn_mask=mask, num_guided_prompts=3).eval()
                randomize(model)
                index = 2  # the guided layer: 3 prompts
                parts = model._block_parts(model.layers[index])
                with mock.patch.object(self.mc.VPTAttention, '_generate_mask', on_cpu):
                    theirs = self.mc.VPTBlock(
                        dim=32, num_heads=2, mlp_ratio=2, qkv_bias=True,
                        norm_layer=partial(nn.LayerNorm, eps=1e-6), mask=mask is not None,
                        prompt_len=3, num_img_tokens=16).eval()
                with torch.no_grad():
                    theirs.norm1.load_state_dict(parts.norm1.state_dict())
                    theirs.norm2.load_state_dict(parts.norm2.state_dict())
                    theirs.attn.qkv.weight.copy_(parts.qkv_weight)
                    theirs.attn.qkv.bias.copy_(parts.qkv_bias)
                    theirs.attn._separate_qkv_params()
                    theirs.attn.proj.load_state_dict(parts.proj.state_dict())
                    theirs.mlp.fc1.load_state_dict(parts.fc1.state_dict())
                    theirs.mlp.fc2.load_state_dict(parts.fc2.state_dict())
                    x = model.prompts.insert(embedded(model), index, replace=False)
                    ours, _ = model._block(index, x, guided=False, want_maps=False)
                    their_out, _ = theirs(x)
                torch.testing.assert_close(ours, their_out, atol=1e-5, rtol=1e-5)

    def test_whole_model_is_theirs(self):
        """Their tiny ``PromptVisionTransformer`` for ``fgvc/vitb_cub200.yaml`` (which sets both
        ``vpt_norm: l2`` and ``mask: true``) and ours with the same weights: the last block's
        output, prompt rows included, and the final CLS feature agree, with each switch on and
        off in both."""
        (path, ) = [p for p in yaml_paths(reference_dir()) if p.endswith('fgvc/vitb_cub200.yaml')]
        for vpt_norm, mask in (('l2', True), ('none', False), ('l2', False), ('none', True)):
            with self.subTest(vpt_norm=vpt_norm, mask=mask):
                args = authors_args(self.mc, path, vpt_norm=vpt_norm, mask=mask)
                theirs = build_authors_model(self.mc, args, tiny=True).eval()
                torch.manual_seed(3)
                with torch.no_grad():  # fresh values: without timm's init some are unset
                    for name, p in theirs.named_parameters():
                        if not any(f'attn.{x}.' in name for x in 'qkv'):
                            p.copy_(torch.randn_like(p) * 0.5)
                for block in theirs.blocks:
                    block.attn._separate_qkv_params()
                guided = tuple(theirs.p_idxs)
                ours = PRETRAIN_MODELS.build(dict(
                    type='DAVPTViT', _scope_='mmpretrain',
                    arch=dict(embed_dims=32, num_layers=12, num_heads=2,
                              feedforward_channels=128),
                    img_size=32, patch_size=16, num_prompts=args.num_prompts,
                    num_guided_prompts=args.proxy_prompt_len, guided_layers=guided,
                    norm_cfg=dict(type='LN', eps=1e-6),
                    prompt_norm='l2' if vpt_norm == 'l2' else None,
                    prompt_attn_mask='patches_only' if mask else None)).eval()
                state = {k: v for k, v in theirs.state_dict().items()
                         if not k.startswith(('head.', 'proxy_prompt', 'other_prompt'))
                         and not any(f'attn.{x}.' in k for x in 'qkv')}
                missing, unexpected = ours.load_state_dict(timm_to_host(state, 'mmpretrain'),
                                                           strict=False)
                self.assertEqual(unexpected, [])
                self.assertTrue(all(k.startswith('prompts.') for k in missing), missing)
                with torch.no_grad():
                    for i in range(12):
                        own = theirs.proxy_prompt_tokens[guided.index(i)] if i in guided \
                            else theirs.other_prompt_tokens[theirs.o_idxs.index(i)]
                        ours.prompts[str(i)].copy_(own)
                img = torch.randn(2, 3, 32, 32)
                last = {}
                block = ours._block

                def keep_last(index, x, *rest):
                    out = block(index, x, *rest)
                    if index == 11:
                        last['ours'] = out[0]
                    return out

                theirs.blocks[-1].register_forward_hook(
                    lambda module, inputs, output: last.update(theirs=output[0]))
                with torch.no_grad(), mock.patch.object(ours, '_block', keep_last):
                    their_cls = theirs.forward_features(img)[0]
                    our_cls = ours(img)[-1]
                torch.testing.assert_close(last['ours'], last['theirs'], atol=1e-4, rtol=1e-4)
                torch.testing.assert_close(our_cls, their_cls, atol=1e-4, rtol=1e-4)
