"""Tests of the host-read counter."""
import threading
from unittest import TestCase

import torch

from benchmarks.host_reads import count_host_reads


class TestCountHostReads(TestCase):

    def test_counts(self):
        x = torch.randn(6)
        with count_host_reads() as reads:
            int(x.argmax())
            x.max().item()
            x[x > 0]
            x.tolist()
            x.numpy()
            torch.bincount(torch.tensor([1, 2]))
            y = torch.zeros(6)
            y[x > 0] = 1.0
        self.assertEqual(dict(reads.counts), {'_local_scalar_dense': 2, 'index': 1, 'tolist': 1,
                                              'numpy': 1, 'bincount': 1, 'index_put_': 1})
        self.assertEqual(reads.total, 7)

    def test_device_side_code_is_not_counted(self):
        x = torch.randn(6)
        labels = torch.tensor([0, -1, 2, 1, -1, 3])
        with count_host_reads() as reads:
            torch.where(labels >= 0, x, 0.0)
            torch.zeros(4).index_add_(0, labels.clamp(min=0), (labels >= 0).float())
            x[torch.tensor([0, 2])]
            x.softmax(0) @ x
        self.assertEqual(reads.total, 0, dict(reads.counts))

    def test_restores_tensor_methods(self):
        tolist, numpy = torch.Tensor.tolist, torch.Tensor.numpy
        with self.assertRaises(RuntimeError):
            with count_host_reads():
                raise RuntimeError('inside')
        self.assertIs(torch.Tensor.tolist, tolist)
        self.assertIs(torch.Tensor.numpy, numpy)

    def test_nested_and_other_threads(self):
        x = torch.randn(4)
        seen = {}

        def other():
            with count_host_reads() as reads:
                x.tolist()
                x.tolist()
            seen['other'] = reads.total

        with count_host_reads() as outer:
            with count_host_reads() as inner:
                x.tolist()
            worker = threading.Thread(target=other)
            worker.start()
            worker.join()
            int(x[0])
        self.assertEqual(inner.total, 1)
        self.assertEqual(outer.total, 2)  # its own two reads, not the other thread's
        self.assertEqual(seen['other'], 2)
        self.assertEqual(torch.Tensor.tolist.__name__, 'tolist')
