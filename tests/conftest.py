"""Test-wide fixtures."""
import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def fresh_default_scope():
    """Start every test without a default scope.

    A Runner leaves its ``default_scope`` as the current one for the whole process, and
    registry builds follow it: a later ``PRETRAIN_MODELS.build`` would then look in mmseg's
    registry. Tests must not depend on the order they run in.
    """
    DefaultScope._instance_dict.clear()
    yield
