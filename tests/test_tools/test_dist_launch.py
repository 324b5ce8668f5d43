"""Tests of the rendezvous of tools/dist_train.sh and tools/dist_test.sh: on one node without
``PORT`` they let torchrun pick a free port (``--standalone``), so concurrent launches on one
machine do not collide; ``PORT`` (or several nodes) still sets the rendezvous port."""
import os
import os.path as osp
import stat
import subprocess
import sys
import tempfile
from unittest import TestCase

import pytest

from tests.utils import DIST_TEST, DIST_TRAIN, REPO, SUBPROCESS_TIMEOUT, write_toy_images

PEER_CONFIG = osp.join(REPO, 'tests', 'data', 'configs', 'toy_cls_peer.py')


def _environ(**env) -> dict:
    """The test's environment for a launcher: CPU, one thread, no rendezvous settings."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ('PORT', 'NNODES', 'NODE_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    environ.update(CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **env)
    environ['PYTHONPATH'] = os.pathsep.join(
        path for path in (REPO, os.environ.get('PYTHONPATH')) if path)
    return environ


class TestRendezvousArguments(TestCase):
    """What the launchers pass to torchrun (PYTHON is a script that prints its arguments)."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.python = osp.join(cls._tmp.name, 'print_args')
        with open(cls.python, 'w') as f:
            f.write('#!/bin/sh\necho "$@"\n')
        os.chmod(cls.python, os.stat(cls.python).st_mode | stat.S_IXUSR)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def _arguments(self, **env) -> dict:
        commands = {'dist_train.sh': ['bash', DIST_TRAIN, 'config.py', '2'],
                    'dist_test.sh': ['bash', DIST_TEST, 'config.py', 'ckpt.pth', '2']}
        arguments = {}
        for name, command in commands.items():
            done = subprocess.run(command, env=_environ(PYTHON=self.python, **env),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=60)
            self.assertEqual(done.returncode, 0, done.stdout)
            arguments[name] = done.stdout.split()
        return arguments

    def test_one_node_picks_a_free_port(self):
        for name, args in self._arguments().items():
            with self.subTest(name):
                self.assertEqual(args[:3], ['-m', 'torch.distributed.run', '--standalone'])
                self.assertIn('--nproc_per_node=2', args)
                self.assertFalse([a for a in args if a.startswith(('--master', '--nnodes'))])

    def test_port_wins(self):
        for name, args in self._arguments(PORT='29611').items():
            with self.subTest(name):
                self.assertIn('--master_port=29611', args)
                self.assertIn('--master_addr=127.0.0.1', args)
                self.assertNotIn('--standalone', args)

    def test_several_nodes(self):
        arguments = self._arguments(NNODES='2', NODE_RANK='1', MASTER_ADDR='10.0.0.2')
        for name, args in arguments.items():
            with self.subTest(name):
                for expected in ('--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.2',
                                 '--master_port=29500'):
                    self.assertIn(expected, args)
                self.assertNotIn('--standalone', args)


@pytest.mark.slow
class TestConcurrentLaunches(TestCase):

    def test_two_launches_at_once(self):
        # Each run holds its first step until the other has started training, so both
        # rendezvous are up at the same time; with one fixed port the second could not start.
        with tempfile.TemporaryDirectory() as root:
            write_toy_images(root)
            marks = {name: osp.join(root, f'{name}.started') for name in ('a', 'b')}
            launches = {}
            for name, peer in (('a', 'b'), ('b', 'a')):
                env = _environ(PYTHON=sys.executable, PEER_BARRIER_MINE=marks[name],
                               PEER_BARRIER_PEER=marks[peer])
                launches[name] = subprocess.Popen(
                    ['bash', DIST_TRAIN, PEER_CONFIG, '1', '--work-dir', name], cwd=root,
                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            outputs = {}
            for name, launch in launches.items():
                try:
                    outputs[name] = launch.communicate(timeout=SUBPROCESS_TIMEOUT)[0]
                except subprocess.TimeoutExpired:
                    for other in launches.values():
                        other.kill()
                    raise
            for name, launch in launches.items():
                self.assertEqual(launch.returncode, 0, outputs[name][-6000:])
                self.assertIn('Epoch(train) [1][4/4]', outputs[name])
                self.assertTrue(osp.exists(osp.join(root, name, 'epoch_1.pth')))
