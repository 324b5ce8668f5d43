"""Tests of the shared pictures: the class-to-prompt map, the attention figure and its capture."""
from unittest import TestCase

import numpy as np
import torch
import torch.nn as nn
from mmengine.dataset import pseudo_collate
from mmengine.registry import MODEL_WRAPPERS
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmda_vpt  # noqa: F401
from mmda_vpt.visualization import (AttentionRow, capture_attention, draw_attention,
                                    draw_class_prompt_map)
from mmda_vpt.visualization.attention_figure import attention_rows
from tests.toy_datasets import tiny_classifier_cfg
from tests.utils import attention_figure_shape


@MODEL_WRAPPERS.register_module(force=True)
class ForwardlessWrapper(nn.Module):
    """A model wrapper whose own forward must never run (as DDP's on a single rank)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        raise AssertionError('a forward through the wrapper')


def digit_batch(count: int = 2, size: int = 16) -> dict:
    rng = np.random.default_rng(0)
    items = []
    for label in range(count):
        image = torch.from_numpy(rng.integers(0, 255, (3, size, size)).astype(np.uint8))
        items.append(dict(inputs=image, data_samples=DataSample().set_gt_label(label)))
    return pseudo_collate(items)


class TestDrawClassPromptMap(TestCase):

    def test_structure(self):
        image = draw_class_prompt_map([1, 0, 1, 3, 0, 1, 2, 0, 0, 3], 4,
                                      [f'c{i}' for i in range(10)])
        self.assertEqual(image.dtype, np.uint8)
        self.assertEqual(image.shape, (330, 608, 3))  # every class named on its row
        again = draw_class_prompt_map([1, 0, 1, 3, 0, 1, 2, 0, 0, 3], 4,
                                      [f'c{i}' for i in range(10)])
        np.testing.assert_array_equal(image, again)
        moved = draw_class_prompt_map([1, 0, 1, 3, 0, 1, 2, 0, 1, 3], 4,
                                      [f'c{i}' for i in range(10)])
        self.assertFalse(np.array_equal(image, moved))

    def test_many_classes_stay_legible(self):
        mapping = np.random.default_rng(0).integers(0, 10, 555)
        names = [f'class {i}' for i in range(555)]
        image = draw_class_prompt_map(mapping, 10, names)
        # Blocks labelled per prompt instead of 555 names: 3 + 0.012 * 555 inches (at most 10).
        self.assertEqual(image.shape[0], 966)
        self.assertLess(image.shape[1], 1000)
        self.assertEqual(draw_class_prompt_map(mapping, 10, names, max_names=600).shape[0],
                         int(round((1.6 + 0.17 * 555) * 100)))

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, r'prompts outside 0\.\.3: \[4\]'):
            draw_class_prompt_map([0, 4, 1], 4)
        with self.assertRaisesRegex(ValueError, '2 class names for 3 classes'):
            draw_class_prompt_map([0, 1, 1], 4, ['a', 'b'])


class TestDrawAttention(TestCase):

    def test_structure(self):
        maps = {0: np.random.rand(5, 4, 4), 1: np.random.rand(5, 4, 4)}
        row = AttentionRow(image=np.zeros((16, 16, 3), np.uint8), maps=maps, title='x',
                           highlight={1: 2})
        # The image, then per layer the CLS token and the first two prompts.
        self.assertEqual(draw_attention([row], prompts=2).shape, attention_figure_shape(1 + 2 * 3))
        self.assertEqual(draw_attention([row, row], title='t').shape,  # all 4 prompts
                         attention_figure_shape(1 + 2 * 5, (96, 96), title=True))
        grey = AttentionRow(image=np.zeros((16, 16), np.uint8), maps=maps)
        self.assertEqual(draw_attention([grey], prompts=0).shape, attention_figure_shape(3))
        wide = AttentionRow(image=np.zeros((16, 32, 3), np.uint8), maps=maps)
        self.assertEqual(draw_attention([wide], prompts=0).shape,
                         attention_figure_shape(3, (48, )))

    def test_overlay(self):
        # A map with one hot patch: that patch's pixels turn red (jet's top), the rest blue.
        attention = np.zeros((1, 2, 2))
        attention[0, 0, 1] = 1.0
        row = AttentionRow(image=np.zeros((8, 8, 3), np.uint8), maps={0: attention}, prefix=1)
        image = draw_attention([row])
        panel = image[30 + 4:30 + 4 + 96, 4 + 100:4 + 100 + 96].astype(int)
        hot, cold = panel[10, 60], panel[60, 10]
        self.assertGreater(hot[0], 60)
        self.assertLess(hot[2], 10)
        self.assertGreater(cold[2], 60)
        self.assertLess(cold[0], 10)

    def test_no_rows(self):
        with self.assertRaisesRegex(ValueError, 'at least one row'):
            draw_attention([])


class TestCaptureAttention(TestCase):

    def setUp(self):
        torch.manual_seed(0)
        self.model = MODELS.build(tiny_classifier_cfg())
        self.model.init_weights()

    def test_forward(self):
        self.model.train()
        rng_before = torch.get_rng_state()
        captured = capture_attention(ForwardlessWrapper(self.model), digit_batch())
        self.assertTrue(self.model.training)  # put back in the mode it was in
        self.assertTrue(torch.equal(rng_before, torch.get_rng_state()))
        self.assertEqual(captured['layers'], [1])  # the guided layer
        self.assertEqual(captured['prefix'], 1)
        maps = captured['maps'][1]
        self.assertEqual(maps.shape, (2, 1 + 4, 4, 4))  # CLS and 4 prompts over 4x4 patches
        self.assertTrue(np.all(maps >= 0) and np.all(maps.sum(axis=(2, 3)) <= 1 + 1e-6))
        with torch.no_grad():
            self.model.eval()
            inputs = self.model.data_preprocessor(digit_batch(), False)['inputs']
            expected = self.model(inputs, mode='tensor').argmax(-1).numpy()
        np.testing.assert_array_equal(captured['preds'], expected)
        self.assertEqual([image.shape for image in captured['images']], [(16, 16, 3)] * 2)
        rows = attention_rows(captured, ['a', 'b'], highlight=[3, None], guided=(1, ))
        self.assertEqual([r.highlight for r in rows], [{1: 3}, {}])
        self.assertEqual(rows[1].maps[1].shape, (5, 4, 4))

    def test_layers(self):
        captured = capture_attention(self.model, digit_batch(1), layers=[0, -1])
        self.assertEqual(captured['layers'], [0, 1])
        with self.assertRaisesRegex(ValueError, r'attention layer -3 is outside the depth of this ViT \(2 layers'):
            capture_attention(self.model, digit_batch(1), layers=[-3])
