"""The wheel of mmda_vpt installed into a fresh virtual environment, as a user installs it.

The wheel is built from a copy of the repository (the build writes ``mmda_vpt/.mim``, which
must not replace the links of the repository's own editable install) and installed with
``pip install --no-index --no-deps`` into a new venv. That venv sees the installed stack (torch,
mmcv, mmpretrain, ...) through a ``.pth`` line naming this interpreter's site-packages: Python
does not read the ``.pth`` files of a folder added that way, so the editable install of the
repository (its ``.pth`` finder) stays out, and ``mmda_vpt`` can only come from the wheel. The
subprocesses run without ``PYTHONPATH`` in a folder outside the repository.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from email.parser import Parser
from typing import List
from unittest import TestCase

import pytest

from tests.utils import TOY_CONFIG, write_toy_images

pytestmark = pytest.mark.slow  # builds a wheel, makes a venv and trains in subprocesses

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(osp.dirname(osp.abspath(__file__)), 'data', 'tiny_davpt_cls.py')
TIMEOUT = 600
#: Top-level entries of the repository the build does not need (outputs, data, the venv).
NOT_COPIED = ('.git', '.venv', 'build', 'dist', 'work_dirs', 'data', 'outputs', 'checkpoints')

#: Trains the config argv[1] into argv[2] with mmengine alone (mmda_vpt comes in through the
#: config's custom_imports), then says where mmda_vpt was imported from.
TRAIN_SCRIPT = '''
import sys
from mmengine.config import Config
from mmengine.runner import Runner
assert 'mmda_vpt' not in sys.modules
cfg = Config.fromfile(sys.argv[1])
cfg.work_dir = sys.argv[2]
Runner.from_cfg(cfg).train()
print('mmda_vpt imported from', sys.modules['mmda_vpt'].__file__)
'''


def _ignore(folder: str, names: List[str]) -> List[str]:
    """What the repository copy leaves out: caches, build outputs and data."""
    top = osp.samefile(folder, REPO)
    return [
        name for name in names
        if name in ('__pycache__', '.mim', '.pytest_cache') or name.endswith('.egg-info') or (
            top and name in NOT_COPIED)
    ]


class TestWheelInstall(TestCase):
    """Build, install into a fresh venv, train through custom_imports, mim train and test."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        tmp = cls._tmp.name
        source = osp.join(tmp, 'source')
        shutil.copytree(REPO, source, symlinks=True, ignore=_ignore)
        cls._run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                  '--no-index', '-w', osp.join(tmp, 'dist'), source], cwd=tmp)
        wheels = os.listdir(osp.join(tmp, 'dist'))
        assert len(wheels) == 1, wheels
        cls.wheel = osp.join(tmp, 'dist', wheels[0])

        cls.venv = osp.join(tmp, 'venv')
        cls._run([sys.executable, '-m', 'venv', '--without-pip', cls.venv], cwd=tmp)
        cls.python = osp.join(cls.venv, 'bin', 'python')
        site = cls._run([cls.python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                         '["purelib"])'], cwd=tmp).stdout.strip()
        stack = {osp.realpath(sysconfig.get_paths()[key]) for key in ('purelib', 'platlib')}
        with open(osp.join(site, 'installed_stack.pth'), 'w') as f:
            f.write(''.join(f'{path}\n' for path in sorted(stack)))
        cls._run([sys.executable, '-m', 'pip', '--python', cls.python, 'install', '--no-index',
                  '--no-deps', cls.wheel], cwd=tmp)
        cls.site = osp.realpath(site)

        cls.work = osp.join(tmp, 'work')
        os.makedirs(cls.work)
        for config in (CONFIG, TOY_CONFIG):
            shutil.copy(config, cls.work)
        write_toy_images(cls.work)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    @classmethod
    def _run(cls, command: List[str], cwd: str) -> subprocess.CompletedProcess:
        environ = {
            key: value
            for key, value in os.environ.items() if key not in ('PYTHONPATH', 'PYTHONHOME')
        }
        # CPU only (also on a GPU machine), no user site-packages, no repository on the path.
        environ.update(CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', PYTHONNOUSERSITE='1')
        if getattr(cls, 'venv', None) is not None:
            environ['VIRTUAL_ENV'] = cls.venv
        result = subprocess.run(
            command, cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=TIMEOUT)
        if result.returncode != 0:
            raise AssertionError(f'{command} exited with {result.returncode}:\n'
                                 f'{result.stdout[-6000:]}')
        return result

    def _wheel_names(self) -> List[str]:
        with zipfile.ZipFile(self.wheel) as wheel:
            return wheel.namelist()

    def test_wheel_holds_only_the_package_and_its_mim_files(self):
        names = self._wheel_names()
        top = {name.split('/')[0] for name in names}
        dist_info = [name for name in top if name.endswith('.dist-info')]
        self.assertEqual(len(dist_info), 1, top)
        self.assertEqual(top - set(dist_info), {'mmda_vpt'})  # no demo, tests, tools, ...
        self.assertFalse([name for name in names if '__pycache__' in name or name.endswith('.pyc')])
        for name in ('tools/train.py', 'tools/test.py', 'configs/_base_/default_runtime_cls.py'):
            self.assertIn(f'mmda_vpt/.mim/{name}', names)
        # Every config and tool of the repository, and the model index where there is one.
        for folder in ('configs', 'tools'):
            for dirpath, dirnames, filenames in os.walk(osp.join(REPO, folder)):
                dirnames[:] = [name for name in dirnames if name != '__pycache__']
                for filename in filenames:
                    if filename.endswith('.pyc'):
                        continue
                    path = osp.relpath(osp.join(dirpath, filename), REPO)
                    self.assertIn(f'mmda_vpt/.mim/{path}', names)
        self.assertEqual('mmda_vpt/.mim/model-index.yml' in names,
                         osp.exists(osp.join(REPO, 'model-index.yml')))
        # Data files of the package itself.
        for dirpath, dirnames, filenames in os.walk(osp.join(REPO, 'mmda_vpt')):
            dirnames[:] = [name for name in dirnames if name not in ('.mim', '__pycache__')]
            for filename in filenames:
                if filename.endswith(('.csv', '.yml')):
                    path = osp.relpath(osp.join(dirpath, filename), REPO)
                    self.assertIn(path, names)

    def test_metadata_requirements(self):
        names = self._wheel_names()
        metadata_name = next(name for name in names if name.endswith('.dist-info/METADATA'))
        with zipfile.ZipFile(self.wheel) as wheel:
            metadata = Parser().parsestr(wheel.read(metadata_name).decode())
        requires = metadata.get_all('Requires-Dist')
        # mmengine's `mmpretrain::` bases import pkg_resources, which setuptools 81 removed.
        setuptools = [req for req in requires if re.match(r'setuptools\b', req)]
        self.assertEqual(len(setuptools), 1, requires)
        self.assertIn('<81', setuptools[0])
        self.assertTrue(
            any(re.match(r'optuna\b.*extra == "tune"', req) for req in requires), requires)
        for name in ('mmengine', 'mmpretrain', 'mmsegmentation', 'scikit-learn'):
            self.assertTrue(any(re.match(rf'{name}\b[^;]*$', req) for req in requires), name)

    def test_train_through_custom_imports(self):
        result = self._run([
            self.python, '-c', TRAIN_SCRIPT, 'tiny_davpt_cls.py', 'work_dirs/plain'
        ], cwd=self.work)
        location = re.search(r'mmda_vpt imported from (\S+)', result.stdout).group(1)
        self.assertEqual(osp.commonpath([osp.realpath(location), self.site]), self.site)
        self.assertIn('ClassPromptMappingHook [epoch 1]', result.stdout)
        self.assertTrue(osp.isfile(osp.join(self.work, 'work_dirs', 'plain', 'epoch_1.pth')))

    def _assert_mim_ran(self, output: str, verb: str, script: str) -> None:
        """Checks that mim ran the installed package's ``.mim/tools/<script>`` on the config."""
        match = re.search(rf'{verb} command is \S+ (\S+) tiny_davpt_cls.py', output)
        self.assertIsNotNone(match, output[-3000:])
        self.assertEqual(
            osp.realpath(match.group(1)), osp.join(self.site, 'mmda_vpt', '.mim', 'tools', script))

    def test_mim_train_and_test(self):
        result = self._run([
            self.python, '-m', 'mim', 'train', 'mmda_vpt', 'tiny_davpt_cls.py', '--work-dir',
            'work_dirs/mim'
        ], cwd=self.work)
        self._assert_mim_ran(result.stdout, 'Training', 'train.py')
        checkpoint = osp.join('work_dirs', 'mim', 'epoch_1.pth')
        self.assertTrue(osp.isfile(osp.join(self.work, checkpoint)))
        result = self._run([
            self.python, '-m', 'mim', 'test', 'mmda_vpt', 'tiny_davpt_cls.py', '--checkpoint',
            checkpoint
        ], cwd=self.work)
        self._assert_mim_ran(result.stdout, 'Testing', 'test.py')
        self.assertRegex(result.stdout, r'Epoch\(test\).*accuracy/top1: \d')
