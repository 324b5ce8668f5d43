"""Test-wide fixtures: every test starts without the process-wide state a Runner leaves."""
import pytest
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.visualization import Visualizer


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@pytest.fixture(autouse=True)
def fresh_runner_globals():
    """Forget the default scope and the named visualizers of earlier runners.

    A Runner leaves its ``default_scope`` current for the whole process, and registry builds
    follow it (a later ``PRETRAIN_MODELS.build`` would look in mmseg's registry); and a runner
    reuses an existing visualizer of the same name, whose save directory may be an earlier
    test's deleted temporary folder. Tests must not depend on the order they run in.
    """
    DefaultScope._instance_dict.clear()
    # A runner names its logger after the second it starts: two runners of one second (fast
    # tests) would share an earlier test's logger, and 'current' logs go to the other one.
    MMLogger._instance_dict.clear()
    for cls in (Visualizer, *_subclasses(Visualizer)):
        cls._instance_dict.clear()
    yield


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: trains through a runner or starts subprocesses (make test-unit skips it)')
