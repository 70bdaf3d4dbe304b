"""pytest plugin for mutation runs only (`make mutation`); `make test` never loads it.

`[tool.mutmut]` loads it with `-p scripts.mutmut_plugin` (mutmut copies scripts/ into mutants/).
mutmut runs, per mutant, every selected test that reached the mutated function, with `-x`.
Three things keep a run at ~10-15 minutes on two cores:

* Example tests run before hypothesis tests and before tests/test_engine_*.py (property and
  oracle modules, some with @given inside a plain test). A mutant that a millisecond example
  test kills stops there instead of first sitting through the property tests. No verdict
  changes.
* Hypothesis does not shrink: a failing example kills the mutant as it is. No verdict changes.
* Hypothesis tests run at most MUTATION_MAX_EXAMPLES examples (default 25; 0 = as written).
  A surviving mutant of diff() or the matching runs every property and oracle test; at their
  own 200-300 examples under mutmut's trampoline that is 20-45 s per survivor, and there are
  100+. This one does trade kills for time: a mutant only a rare example exposes may survive.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import Phase, is_hypothesis_test, settings

MAX_EXAMPLES = int(os.environ.get("MUTATION_MAX_EXAMPLES", "25"))

# Settings the tests create from here on (module-level `SETTINGS = settings(...)`) inherit this.
settings.register_profile("mutmut", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("mutmut")


def _capped(current: object) -> settings | None:
    if isinstance(current, settings) and current.max_examples > MAX_EXAMPLES:
        return settings(current, max_examples=MAX_EXAMPLES)
    return None


def _cap_test(test: Any) -> None:
    test = getattr(test, "__func__", test)  # a method's function carries the settings
    # @given keeps the test's settings here and reads them back on every call. Hypothesis
    # offers no public way to override an explicit max_examples; if this attribute ever goes,
    # the tests simply run as written.
    capped = _capped(getattr(test, "_hypothesis_internal_use_settings", None))
    if capped is not None:
        test._hypothesis_internal_use_settings = capped


def _cap_module(module: Any) -> None:
    # A test that applies a module-level settings object to a @given inside its body reads
    # the global when it runs.
    for name, value in list(vars(module).items()):
        capped = _capped(value)
        if capped is not None:
            setattr(module, name, capped)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    is_property = {item.nodeid: is_hypothesis_test(getattr(item, "obj", None)) for item in items}
    items.sort(key=lambda item: is_property[item.nodeid] or item.path.name.startswith("test_engine_"))
    if MAX_EXAMPLES <= 0:
        return
    for item in items:
        if is_property[item.nodeid]:
            _cap_test(item.obj)  # type: ignore[attr-defined]
        module = getattr(item, "module", None)
        if module is not None:
            _cap_module(module)
