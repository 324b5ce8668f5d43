# toy_cls.py for one epoch, held before its first step until a concurrent launch has started
# training too (tests/data/launch/peer_barrier.py; the tests of the launchers' ports).
_base_ = './toy_cls.py'

custom_imports = dict(imports=['mmda_vpt', 'tests.data.launch.peer_barrier'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='PeerBarrierHook')]
train_cfg = dict(max_epochs=1)
