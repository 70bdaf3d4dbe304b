"""pytest plugin for mutation runs only: run the example-based tests before the property tests.

`[tool.mutmut]` loads it (`-p scripts.mutmut_test_order`; mutmut copies scripts/ into mutants/).
mutmut runs each mutant's tests with `-x`, in no particular order, so a mutant that a
millisecond example test kills could first sit through tens of seconds of hypothesis tests.
Moving those last changes no verdict, only how soon a killed mutant stops.
"""

from __future__ import annotations

import pytest
from hypothesis import is_hypothesis_test


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: is_hypothesis_test(getattr(item, "obj", None)))
