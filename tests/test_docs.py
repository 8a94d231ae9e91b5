"""Every docstring example of the package runs and shows what the code gives (a stale
example misleads the reader it was written for)."""

import doctest
import importlib
import pkgutil

import pytest

import riskmodel


def _modules():
    for info in pkgutil.walk_packages(riskmodel.__path__, "riskmodel."):
        if "spark" not in info.name:  # imports pyspark: the Spark tests cover those modules
            yield info.name


@pytest.mark.parametrize("name", [n for n in _modules()
                                  if any(t.examples for t in doctest.DocTestFinder().find(importlib.import_module(n)))])
def test_docstring_examples_run(name):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(importlib.import_module(name)):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) of {name} give another result"
