"""Prompt initialization: VPT's uniform, per-layer xavier, and the authors' stacked xavier."""
import math
import os.path as osp
import types
from unittest import TestCase, mock

import torch
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

import mmda_vpt  # noqa: F401
from mmda_vpt.models.backbones import DeepPrompts, PromptOptions
from tests.utils import reference_dir
from .authors_code import authors_args, model_creator, read_yaml_row, yaml_paths

TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=64)


def build(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='DAVPTViT', _scope_='mmpretrain', arch=TINY_ARCH, img_size=32,
               patch_size=8, num_prompts=30, guided_layers=(2, 3), num_guided_prompts=50,
               prompt_init='xavier_stacked')
    cfg.update(kwargs)
    return PRETRAIN_MODELS.build(cfg)


def ks_distance_to_uniform(values: torch.Tensor, bound: float) -> float:
    """Kolmogorov-Smirnov distance between the values and U(-bound, bound)."""
    x = values.flatten().double().sort().values
    n = x.numel()
    cdf = (x + bound) / (2 * bound)
    above = torch.arange(1, n + 1, dtype=torch.float64) / n - cdf
    below = cdf - torch.arange(0, n, dtype=torch.float64) / n
    return float(torch.maximum(above, below).max())


def authors_bounds(mc, args, depth: int = 12, embed_dim: int = 768):
    """Each layer's prompt bound as their ``PromptVisionTransformer`` initializes it.

    Their ``_setup_prompt_indices`` and ``_initialize_prompt_tokens`` run on the row's
    arguments, with ``xavier_uniform_`` filling each tensor with the bound it draws from
    (torch's gain * sqrt(6 / (fan_in + fan_out)) for that tensor's shape), so that their
    division by 8 and their (layers, length, dim) shapes give the bound of every layer.
    """
    vit = types.SimpleNamespace(args=args, depth=depth, num_prompts=args.num_prompts,
                                num_classes=args.num_classes, embed_dim=embed_dim)
    mc.PromptVisionTransformer._setup_prompt_indices(vit)

    def fill_with_bound(tensor, gain=1.0):
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(tensor)
        with torch.no_grad():
            return tensor.fill_(gain * math.sqrt(6.0 / float(fan_in + fan_out)))

    with mock.patch.object(torch.nn.init, 'xavier_uniform_', fill_with_bound):
        mc.PromptVisionTransformer._initialize_prompt_tokens(vit)
    bounds = {}
    for layers, tokens in ((vit.p_idxs, vit.proxy_prompt_tokens),
                           (vit.o_idxs, vit.other_prompt_tokens)):
        for local, layer in enumerate(layers):
            if tokens[local].numel():
                bounds[layer] = float(tokens[local].flatten()[0])
    return vit.p_idxs, bounds


def our_bounds(args, guided_layers, depth: int = 12, embed_dim: int = 768):
    """Each layer's bound with our options for the row's layout."""
    options = PromptOptions(num_prompts=args.num_prompts, guided_layers=tuple(guided_layers),
                            num_guided_prompts=args.proxy_prompt_len,
                            prompt_init='xavier_stacked',
                            prompt_init_scale=0.125 if args.init_divide_by8 else 1.0)
    prompts = DeepPrompts(options.prompt_counts(depth), embed_dim, (16, 16), 1,
                          init=options.prompt_init, init_scale=options.prompt_init_scale,
                          guided_layers=options.resolve_guided_layers(depth))
    return prompts.bounds


class TestPromptInit(TestCase):

    def test_xavier_stacked_is_uniform_with_the_stacked_bound(self):
        for scale in (1.0, 0.125):
            with self.subTest(scale=scale):
                model = build(prompt_init_scale=scale)
                # Guided layers 2, 3: one (2, 50, 64) tensor; layers 0, 1: one (2, 30, 64).
                expected = {2: math.sqrt(6 / ((50 + 2) * 64)) * scale,
                            3: math.sqrt(6 / ((50 + 2) * 64)) * scale,
                            0: math.sqrt(6 / ((30 + 2) * 64)) * scale,
                            1: math.sqrt(6 / ((30 + 2) * 64)) * scale}
                self.assertEqual(sorted(model.prompts.bounds), [0, 1, 2, 3])
                for layer, bound in expected.items():
                    self.assertAlmostEqual(model.prompts.bounds[layer], bound, places=12)
                for group in ((0, 1), (2, 3)):
                    values = torch.cat([model.prompts[str(i)].detach() for i in group])
                    bound = expected[group[0]]
                    n = values.numel()  # 3840 / 6400 draws
                    self.assertLessEqual(float(values.abs().max()), bound)
                    self.assertGreater(float(values.abs().max()), 0.99 * bound)
                    # Mean 0 and variance bound^2 / 3 within 5 standard errors.
                    self.assertLess(abs(float(values.mean())), 5 * bound / math.sqrt(3 * n))
                    var = float(values.var())
                    self.assertLess(abs(var - bound**2 / 3), 5 * bound**2 * math.sqrt(4 / 45 / n))
                    # Kolmogorov-Smirnov at the 1e-6 level: D_crit = sqrt(ln(2 / 1e-6) / 2n).
                    self.assertLess(ks_distance_to_uniform(values, bound),
                                    math.sqrt(math.log(2e6) / (2 * n)))
                # Drawn as one tensor per group: the two layers of a group differ.
                self.assertFalse(torch.equal(model.prompts['2'], model.prompts['3']))

    def test_scale_applies_to_every_init(self):
        plain = build(prompt_init='uniform')
        scaled = build(prompt_init='uniform', prompt_init_scale=0.5)
        for key in plain.prompts:  # the same draws (same seed), halved
            torch.testing.assert_close(scaled.prompts[key], plain.prompts[key] * 0.5)
        vpt_bound = math.sqrt(6 / (3 * 8 * 8 + 64))
        self.assertEqual(set(plain.prompts.bounds.values()), {vpt_bound})
        self.assertEqual(set(scaled.prompts.bounds.values()), {vpt_bound * 0.5})
        xavier = build(prompt_init='xavier', prompt_init_scale=0.25)
        self.assertAlmostEqual(xavier.prompts.bounds[0], math.sqrt(6 / (30 + 64)) * 0.25)
        self.assertAlmostEqual(xavier.prompts.bounds[3], math.sqrt(6 / (50 + 64)) * 0.25)
        for key, prompt in xavier.prompts.items():
            self.assertLessEqual(float(prompt.detach().abs().max()),
                                 xavier.prompts.bounds[int(key)])
        # reset() draws again from the same bounds.
        model = build(prompt_init_scale=0.125)
        before = {k: v.detach().clone() for k, v in model.prompts.items()}
        model.reset_prompts()
        for key, prompt in model.prompts.items():
            self.assertFalse(torch.equal(prompt, before[key]))
            self.assertLessEqual(float(prompt.detach().abs().max()),
                                 model.prompts.bounds[int(key)])

    def test_layers_without_prompts(self):
        # The authors' rows with num_prompts 0 outside the guided layers: their other-layer
        # tensor is empty, the guided stack keeps its own bound.
        model = build(num_prompts=0, guided_layers=(1, 2, 3), num_guided_prompts=10)
        self.assertEqual(sorted(model.prompts.keys()), ['1', '2', '3'])
        self.assertEqual(sorted(model.prompts.bounds), [1, 2, 3])
        self.assertAlmostEqual(model.prompts.bounds[1], math.sqrt(6 / ((10 + 3) * 64)))
        no_guided = build(guided_layers=(), num_prompts=5)  # one stack of all layers
        self.assertAlmostEqual(no_guided.prompts.bounds[0], math.sqrt(6 / ((5 + 4) * 64)))

    def test_errors(self):
        for scale in (0, -1.0, float('nan'), float('inf'), True, '0.125'):
            with self.subTest(scale=scale), self.assertRaisesRegex(
                    ValueError, 'prompt_init_scale must be a positive finite number'):
                build(prompt_init_scale=scale)
        with self.assertRaisesRegex(ValueError, r"prompt_init must be one of \('uniform', "
                                    r"'xavier', 'xavier_stacked'\), got 'kaiming'"):
            build(prompt_init='kaiming')
        self.assertEqual(PromptOptions().prompt_init, 'uniform')  # the paper's VPT default
        self.assertEqual(PromptOptions().prompt_init_scale, 1.0)


class TestAuthorsPromptInit(TestCase):
    """Every released config of the authors: our bound per layer equals their code's."""

    def setUp(self):
        self.ref = reference_dir()
        if self.ref is None:
            self.skipTest('the authors\' code (../shared/reference/DA-VPT) is absent')
        self.mc = model_creator(self.ref)

    def test_every_row(self):
        paths = yaml_paths(self.ref)
        self.assertEqual(len(paths), 61)
        scaled, unscaled, divided = [], [], []
        for path in paths:
            name = osp.relpath(path, osp.join(self.ref, 'configs'))
            with self.subTest(row=name):
                args = authors_args(self.mc, path)
                guided, theirs = authors_bounds(self.mc, args)
                ours = our_bounds(args, guided)
                self.assertEqual(sorted(ours), sorted(theirs))
                for layer in theirs:  # theirs: float32 tensors
                    self.assertAlmostEqual(ours[layer], theirs[layer], delta=1e-6 * theirs[layer])
                (scaled if args.init_divide_by8 else unscaled).extend(ours.values())
                divided.append(args.init_divide_by8)
                # A row's intended guided depth (proxy_prompt_depth, which their parser drops)
                # gives other stacks; the bounds still agree.
                depth = read_yaml_row(path).get('proxy_prompt_depth')
                if depth is not None:
                    args.proxy_prompt_end_idx = args.proxy_prompt_start_idx + int(depth) - 1
                    guided, theirs = authors_bounds(self.mc, args)
                    ours = our_bounds(args, guided)
                    self.assertEqual(sorted(ours), sorted(theirs))
                    for layer in theirs:
                        self.assertAlmostEqual(ours[layer], theirs[layer],
                                               delta=1e-6 * theirs[layer])
        # 57 rows divide by 8 (bounds of a few thousandths), the 4 MAE-FGVC rows do not.
        self.assertEqual(sum(divided), 57)
        self.assertGreater(min(unscaled), max(scaled))
