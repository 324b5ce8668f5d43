"""Tests of mmda_vpt.compat.apply_compat_patches: the one call that applies every patch."""
from unittest import TestCase

from mmengine.dist import utils as dist_utils
from mmengine.model import MMDistributedDataParallel

import mmda_vpt
from mmda_vpt.compat import apply_compat_patches


class TestApplyCompatPatches(TestCase):
    """`import mmda_vpt` applies the patches; a second call wraps nothing twice."""

    def test_applied_on_import(self):
        self.assertIs(mmda_vpt.apply_compat_patches, apply_compat_patches)
        self.assertTrue(hasattr(dist_utils._init_dist_pytorch, '__wrapped__'))
        self.assertTrue(hasattr(MMDistributedDataParallel.__init__, '__wrapped__'))

    def test_idempotent(self):
        launcher = dist_utils._init_dist_pytorch
        ddp_init = MMDistributedDataParallel.__init__
        apply_compat_patches()
        apply_compat_patches()
        self.assertIs(dist_utils._init_dist_pytorch, launcher)
        self.assertIs(MMDistributedDataParallel.__init__, ddp_init)
        self.assertFalse(hasattr(launcher.__wrapped__, '__wrapped__'))
        self.assertFalse(hasattr(ddp_init.__wrapped__, '__wrapped__'))
