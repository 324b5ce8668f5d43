"""Tests of PromptProxyAnchorLoss against pytorch-metric-learning and by hand."""
import math
from unittest import TestCase

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ProxyAnchorLoss

from mmda_vpt.models.losses import PromptProxyAnchorLoss


def hand_loss(proxies, samples, labels, margin, alpha, pos_reduction):
    """Eq. 4 written out with Python loops."""
    num = proxies.shape[0]
    cos = F.normalize(proxies.double(), dim=1) @ F.normalize(samples.double(), dim=1).t()
    pos_terms, neg_terms = [], []
    for p in range(num):
        pos = [math.exp(-alpha * (cos[p, i].item() - margin)) for i in range(len(labels))
               if labels[i] == p]
        neg = [math.exp(alpha * (cos[p, i].item() + margin)) for i in range(len(labels))
               if labels[i] != p]
        if pos or pos_reduction == 'all':
            pos_terms.append(math.log(1 + sum(pos)))
        neg_terms.append(math.log(1 + sum(neg)))
    denominator = len(pos_terms) if pos_reduction == 'with_positives' else num
    return sum(pos_terms) / max(denominator, 1) + sum(neg_terms) / num


class TestPromptProxyAnchorLoss(TestCase):

    def test_matches_pytorch_metric_learning(self):
        torch.manual_seed(0)
        for num, dim, n in [(5, 16, 40), (10, 32, 7), (3, 8, 1)]:
            with self.subTest(num=num, n=n):
                proxies = torch.randn(num, dim)
                samples = torch.randn(n, dim)
                labels = torch.randint(0, num, (n, ))
                oracle = ProxyAnchorLoss(num_classes=num, embedding_size=dim, margin=0.1,
                                         alpha=32)
                with torch.no_grad():
                    oracle.proxies.copy_(proxies)
                expected = oracle(samples, labels)
                ours = PromptProxyAnchorLoss(margin=0.1, alpha=32)(proxies, samples, labels)
                self.assertLess(abs(ours.item() - expected.item()), 1e-6 * max(1, abs(
                    expected.item())))

    def test_proxy_scale_is_scale_and_margin(self):
        # The authors' loss_vpt_scale_ratio s: Eq. 4 with alpha * s and delta / s.
        torch.manual_seed(0)
        proxies, samples = torch.randn(4, 8), torch.randn(12, 8)
        labels = torch.randint(0, 4, (12, ))
        for scale in (0.5, 5.0):
            scaled = PromptProxyAnchorLoss(margin=0.1, alpha=32, proxy_scale=scale)
            expected = hand_loss(proxies, samples, labels, 0.1 / scale, 32 * scale,
                                 'with_positives')
            got = scaled(proxies, samples, labels).item()
            self.assertLess(abs(got - expected), 1e-4 * max(1.0, abs(expected)))
        self.assertNotAlmostEqual(
            PromptProxyAnchorLoss(proxy_scale=5.0)(proxies, samples, labels).item(),
            PromptProxyAnchorLoss()(proxies, samples, labels).item())
        with self.assertRaisesRegex(ValueError, 'proxy_scale must be > 0, got 0'):
            PromptProxyAnchorLoss(proxy_scale=0)

    def test_hand_computed_all_reduction(self):
        # Two prompts, three samples, all positives on prompt 0: 'all' averages the positive
        # term over both prompts (prompt 1's is log(1 + 0) = 0).
        proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        samples = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
        labels = torch.tensor([0, 0, 0])
        cos_p0 = [2**-0.5, 1.0, 0.0]
        cos_p1 = [2**-0.5, 0.0, 1.0]
        pos0 = math.log(1 + sum(math.exp(-32 * (c - 0.1)) for c in cos_p0))
        neg1 = math.log(1 + sum(math.exp(32 * (c + 0.1)) for c in cos_p1))
        expected_all = (pos0 + 0.0) / 2 + (0.0 + neg1) / 2
        expected_pos = pos0 / 1 + (0.0 + neg1) / 2
        loss_all = PromptProxyAnchorLoss(pos_reduction='all')(proxies, samples, labels)
        loss_pos = PromptProxyAnchorLoss()(proxies, samples, labels)
        self.assertAlmostEqual(loss_all.item(), expected_all, places=4)
        self.assertAlmostEqual(loss_pos.item(), expected_pos, places=4)
        for reduction in ('all', 'with_positives'):
            self.assertAlmostEqual(
                PromptProxyAnchorLoss(pos_reduction=reduction)(proxies, samples, labels).item(),
                hand_loss(proxies, samples, labels, 0.1, 32, reduction), places=4)

    def test_edge_cases(self):
        torch.manual_seed(0)
        loss = PromptProxyAnchorLoss()
        proxies = torch.randn(4, 8, requires_grad=True)
        samples = torch.randn(6, 8, requires_grad=True)
        # All samples of one class: prompts 1-3 have no positive; finite and as by hand.
        one_class = loss(proxies, samples, torch.zeros(6, dtype=torch.long))
        self.assertTrue(torch.isfinite(one_class))
        self.assertAlmostEqual(one_class.item(),
                               hand_loss(proxies.detach(), samples.detach(), [0] * 6, 0.1, 32,
                                         'with_positives'), places=4)
        # No sample at all: zero, and backward still works.
        empty = loss(proxies, samples[:0], torch.zeros(0, dtype=torch.long))
        self.assertEqual(empty.item(), 0.0)
        empty.backward()
        # Extreme similarities do not overflow.
        huge = loss(proxies * 1e4, samples * 1e4, torch.tensor([0, 1, 2, 3, 0, 1]))
        self.assertTrue(torch.isfinite(huge))
        # Gradients reach both sides.
        proxies.grad = None
        loss(proxies, samples, torch.tensor([0, 1, 2, 3, 0, 1])).backward()
        self.assertGreater(proxies.grad.abs().sum().item(), 0)
        self.assertGreater(samples.grad.abs().sum().item(), 0)

    def test_ignored_samples(self):
        """Label -1 leaves a sample out: the same loss and gradients as dropping it."""
        torch.manual_seed(0)
        proxies = torch.randn(4, 8, requires_grad=True)
        samples = torch.randn(7, 8, requires_grad=True)
        labels = torch.tensor([0, -1, 2, 1, -1, 3, 0])
        keep = labels >= 0
        with torch.no_grad():
            samples[4] = float('nan')  # a left-out sample must not reach the loss at all
        for reduction in ('with_positives', 'all'):
            loss = PromptProxyAnchorLoss(pos_reduction=reduction)
            masked = loss(proxies, samples, labels)
            (grad_p, grad_s) = torch.autograd.grad(masked, (proxies, samples))
            dropped = loss(proxies, samples[keep], labels[keep])
            (ref_p, ref_s) = torch.autograd.grad(dropped, (proxies, samples))
            torch.testing.assert_close(masked, dropped)
            torch.testing.assert_close(grad_p, ref_p)
            torch.testing.assert_close(grad_s, ref_s)
            self.assertEqual(float(grad_s[~keep].abs().sum()), 0.0)
            # Only ignored samples: zero, still connected to the inputs.
            none = loss(proxies, samples, torch.full((7, ), -1))
            self.assertEqual(none.item(), 0.0)
            self.assertTrue(none.requires_grad)

    def test_bf16_autocast(self):
        torch.manual_seed(0)
        proxies = torch.randn(6, 32)
        samples = torch.randn(50, 32)
        labels = torch.randint(0, 6, (50, ))
        loss = PromptProxyAnchorLoss()
        reference = loss(proxies, samples, labels)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = loss(proxies.bfloat16(), samples.bfloat16(), labels)
        self.assertEqual(mixed.dtype, torch.float32)
        self.assertTrue(torch.isfinite(mixed))
        self.assertLess(abs(mixed.item() - reference.item()), 1e-2)

    def test_errors(self):
        loss = PromptProxyAnchorLoss()
        with self.assertRaisesRegex(ValueError, r'labels must be in \[0, 3\)'):
            loss(torch.randn(3, 4), torch.randn(2, 4), torch.tensor([0, 3]))
        with self.assertRaisesRegex(ValueError, r'got values from -2 to 1'):
            loss(torch.randn(3, 4), torch.randn(2, 4), torch.tensor([-2, 1]))
        with self.assertRaisesRegex(ValueError, 'expected proxies'):
            loss(torch.randn(3, 4), torch.randn(2, 5), torch.tensor([0, 1]))
        with self.assertRaisesRegex(ValueError, 'pos_reduction must be one of'):
            PromptProxyAnchorLoss(pos_reduction='mean')
