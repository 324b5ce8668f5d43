"""A hook that holds a training run until a second, concurrent run has started training.

Used by tests/test_tools/test_dist_launch.py to make two launches of tools/dist_train.sh
overlap: each rank 0 writes the file ``$PEER_BARRIER_MINE`` before its first training step and
waits until ``$PEER_BARRIER_PEER`` exists (written by the other launch). Without the variables
the hook does nothing.
"""
import os
import os.path as osp
import time

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

#: Seconds a run waits for the other before it fails.
WAIT = 300


@HOOKS.register_module(force=True)
class PeerBarrierHook(Hook):
    """Holds ``before_train`` until the other launch's rank 0 has reached it."""

    def before_train(self, runner) -> None:
        mine, peer = os.environ.get('PEER_BARRIER_MINE'), os.environ.get('PEER_BARRIER_PEER')
        if not mine or not peer or get_rank() != 0:
            return
        with open(mine, 'w') as f:
            f.write(str(os.getpid()))
        deadline = time.monotonic() + WAIT
        while not osp.exists(peer):
            if time.monotonic() > deadline:
                raise RuntimeError(f'the other launch did not start training within {WAIT} s '
                                   f'({peer} was not written)')
            time.sleep(0.2)
