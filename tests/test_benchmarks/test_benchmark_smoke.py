"""Smoke tests of ``benchmarks/`` at tiny sizes: structure only, never speed."""
import json
import os.path as osp
import tempfile
from unittest import TestCase

import pytest
import torch

from benchmarks import step_cost
from benchmarks.class_clustering import time_class_clustering

pytestmark = pytest.mark.slow  # runners and subprocesses


class TestStepCostBenchmark(TestCase):

    @classmethod
    def setUpClass(cls):
        cls.bench = step_cost
        cls.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    @classmethod
    def tearDownClass(cls):
        torch.set_num_threads(cls.threads)

    def test_structure(self):
        bench = self.bench
        with tempfile.TemporaryDirectory() as tmp:
            prefix = osp.join(tmp, 'results', 'quick')
            report = bench.main(['--quick', '--quiet', '--device', 'cpu', '--threads', '1',
                                 '--tasks', 'cls', 'seg', 'kmeans', '--kmeans-repeats', '1',
                                 '--repeats', '1', '--infer-repeats', '1',
                                 '--out', prefix])
            with open(prefix + '.json') as f:
                saved = json.load(f)
            with open(prefix + '.md') as f:
                markdown = f.read()
        self.assertEqual(set(saved['tasks']), {'cls', 'seg'})
        self.assertEqual(saved['env']['device'], 'cpu')
        for task, result in report['tasks'].items():
            self.assertEqual(tuple(result['variants']), bench.TASK_VARIANTS[task])
            for name, entry in result['variants'].items():
                for key in ('train_s', 'peak_bytes', 'step_bytes', 'persistent_bytes',
                            'saved_activation_bytes', 'bwd_fwd_flops', 'params_trainable'):
                    self.assertIn(key, entry, f'{task}/{name} lacks {key}')
                self.assertGreater(entry['train_s'], 0)
                self.assertGreater(entry['step_bytes'], 0)
                self.assertGreaterEqual(entry['peak_bytes'], entry['persistent_bytes'])
                # Every trainable parameter that takes part got a gradient, no frozen one did.
                self.assertGreater(entry['params_with_grad'], 0)
            for name in bench.INFER_VARIANTS:
                self.assertGreater(result['variants'][name]['infer_s'], 0)
            variants = result['variants']
            # Structure of the cost, not speed: frozen weights get no weight gradients, so the
            # prompt variants' backward counts clearly fewer FLOPs than full fine-tuning's.
            self.assertLess(variants['vpt_deep']['bwd_fwd_flops'],
                            0.9 * variants['full_ft']['bwd_fwd_flops'])
            self.assertLess(variants['vpt_deep']['params_trainable'],
                            variants['full_ft']['params_trainable'])
            # The counts include the fused attention: the prompt variants' backward has more
            # FLOPs than their forward (the attention backward recomputes the scores).
            self.assertGreater(variants['vpt_deep']['bwd_flops'],
                               variants['vpt_deep']['fwd_flops'])
            # DA-VPT's hooks read the labels on the host once each per step (two syncs on a
            # GPU) and compare the mapping hook's CPU map with the one last checked (no sync).
            self.assertLessEqual(variants['davpt']['host_reads'],
                                 variants['vpt_deep']['host_reads'] + 3)
            labels = [row['label'] for row in result['ratios']]
            self.assertIn('DA-VPT / VPT-Deep train step', labels)
            self.assertIn('VPT-Deep / full FT train step FLOPs', labels)
            self.assertIn('DA-VPT / VPT-Deep inference', labels)
            self.assertIn('DA-VPT / VPT-Deep peak train memory', labels)
            for row in result['ratios']:
                self.assertGreater(row['ratio'], 0)
                self.assertIn(row['met'], (None, True, False))
        seg_labels = [row['label'] for row in report['tasks']['seg']['ratios']]
        self.assertIn('DA-VPT with_cp / without: peak memory', seg_labels)
        rows = report['kmeans']['rows']
        self.assertEqual({(r['classes'], r['groups']) for r in rows},
                         {(20, 4), (20, 10), (50, 4), (50, 10)})
        for row in rows:
            for key in ('initial_n10_s', 'initial_n1_s', 'update_s', 'update_cpu_s'):
                self.assertGreater(row[key], 0)
            self.assertGreaterEqual(row['update_iters'], 1)
        self.assertEqual(set(report['kmeans']['worst_largest']),
                         {'update', 'initial_n10', 'initial_n1'})
        self.assertIn('| DA-VPT / VPT-Deep train step |', markdown)
        self.assertIn('class-to-prompt k-means', markdown)

    def test_frozen_grad_check(self):
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
        model[0].weight.requires_grad = False
        model(torch.randn(3, 4)).sum().backward()
        counts = self.bench.check_frozen_grads(model)
        self.assertEqual(counts['frozen'], 16)
        self.assertEqual(counts['with_grad'], counts['trainable'])
        model[0].weight.grad = torch.zeros(4, 4)
        with self.assertRaisesRegex(AssertionError, r'frozen parameters received gradients: '
                                    r"\['0.weight'\]"):
            self.bench.check_frozen_grads(model)

    def test_cpu_step_peak(self):
        # The profiler-based CPU peak sees a tensor allocated and freed inside the step.
        def step():
            big = torch.empty(1024, 1024)  # 4 MiB
            del big
            torch.empty(256, 1024)  # 1 MiB

        peak = self.bench.step_peak_bytes(step, torch.device('cpu'))
        self.assertGreaterEqual(peak, 4 * 2**20)
        self.assertLess(peak, 6 * 2**20)

    def test_paired_ratio(self):
        times = dict(a=[2.0, 4.0, 6.0], b=[1.0, 2.0, 2.0])
        self.assertEqual(self.bench.paired_ratio(times, 'a', 'b'), 2.0)
        self.assertIsNone(self.bench.paired_ratio(times, 'a', 'c'))

    def test_attention_flops_counted(self):
        """The fused CPU attention enters the FLOP counts with torch's own formulas."""
        from torch.utils.flop_counter import FlopCounterMode
        batch, heads, tokens, dim = 2, 3, 17, 8
        from torch.nn.attention import SDPBackend, sdpa_kernel
        q, k, v = (torch.randn(batch, heads, tokens, dim, requires_grad=True) for _ in range(3))
        mapping = self.bench._attention_flop_mapping()
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # the fused CPU kernel, as in the models
            with FlopCounterMode(display=False, custom_mapping=mapping) as forward:
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            with FlopCounterMode(display=False, custom_mapping=mapping) as backward:
                out.sum().backward()
        matmul = 2 * batch * heads * tokens * tokens * dim  # one (T x d) @ (d x T) product
        self.assertEqual(forward.get_total_flops(), 2 * matmul)
        self.assertEqual(backward.get_total_flops(), 5 * matmul)


class TestClassClusteringTiming(TestCase):

    def test_timing_helper(self):
        timing = time_class_clustering(num_classes=60, dim=16, num_prompts=4, repeats=1)
        self.assertEqual(set(timing), {'initial_ms', 'update_ms', 'update_ms_min', 'changed'})
        self.assertGreater(timing['initial_ms'], 0)
        self.assertGreater(timing['update_ms'], 0)


class TestVisualizationCostBenchmark(TestCase):

    def test_structure(self):
        from benchmarks import visualization_cost
        with tempfile.TemporaryDirectory() as tmp:
            out = osp.join(tmp, 'vis')
            results = visualization_cost.main(['--quick', '--out', out])
            self.assertEqual([r['model'] for r in results], ['demo'])
            (result, ) = results
            self.assertEqual((result['images'], result['classes'], result['prompts']), (4, 10, 5))
            for key in ('forward', 'pictures', 'send', 'val_image', 'total'):
                self.assertGreater(result['ms'][key], 0, key)
            self.assertAlmostEqual(result['ms']['total'],
                                   result['ms']['pictures'] + result['ms']['send'])
            with open(out + '.json') as f:
                self.assertEqual(json.load(f)[0]['ms'], result['ms'])
            with open(out + '.md') as f:
                self.assertIn("| the demo's ViT (6 x 64, 28x28 grey) | 4, 10 classes x 5 prompts |",
                              f.read())
