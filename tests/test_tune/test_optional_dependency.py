"""mmda_vpt.tune without Optuna (the "tune" extra): one error that names the extra."""
import importlib
import sys
from unittest import TestCase, mock

import mmda_vpt.tune  # noqa: F401  (the stack loads once, before sys.modules is patched)


class TestWithoutOptuna(TestCase):

    def test_import_names_the_extra(self):
        # mock.patch.dict restores sys.modules afterwards: the tuner imported by other tests and
        # optuna itself come back as they were.
        with mock.patch.dict(sys.modules):
            for name in [n for n in sys.modules if n.startswith('mmda_vpt.tune')]:
                del sys.modules[name]
            sys.modules['optuna'] = None  # what importlib reports for a package not installed
            with self.assertRaisesRegex(ImportError, r'pip install "mmda_vpt\[tune\]"'):
                importlib.import_module('mmda_vpt.tune')
        self.assertIs(importlib.import_module('mmda_vpt.tune'), mmda_vpt.tune)
