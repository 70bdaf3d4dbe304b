"""Summarise the last `mutmut run`: the score on one line, then the surviving mutants.

Used by `make mutation`; run it from the repository root, with the venv's python:

    .venv/bin/python scripts/mutation_report.py           # score + survivor names
    .venv/bin/python scripts/mutation_report.py --diffs   # ... and what each survivor changes

It reads results through mutmut's own CLI (`mutmut results --all true`, `mutmut show NAME`)
rather than the files under mutants/, whose layout is mutmut's business.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

CLASS_SEPARATOR = "ǁ"  # mutmut names a method mutant module.xǁClassǁmethod__mutmut_N


def mutmut(*args: str) -> str:
    exe = Path(sys.executable).with_name("mutmut")
    done = subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"mutmut {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def results() -> dict[str, str]:
    """Mutant name -> status ("killed", "survived", "no tests", "timeout", ...)."""
    statuses: dict[str, str] = {}
    for line in mutmut("results", "--all", "true").splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            statuses[name] = status
    return statuses


def where(name: str) -> tuple[str, str]:
    """("scimsync/engine/diff.py", "diff") or ("scimsync/engine/plan.py", "TargetPlan.ops")."""
    module, _, mangled = name.partition("__mutmut_")[0].rpartition(".")
    if mangled.startswith(f"x{CLASS_SEPARATOR}"):
        _, cls, func = mangled.split(CLASS_SEPARATOR)
        function = f"{cls}.{func}"
    else:
        function = mangled.removeprefix("x_")
    return module.replace(".", "/") + ".py", function


def number(name: str) -> int:
    return int(name.rpartition("__mutmut_")[2])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--diffs", action="store_true", help="print `mutmut show` for every survivor")
    args = parser.parse_args()

    if not Path("mutants").is_dir():
        sys.exit("no mutants/ directory: run `make mutation` (or `mutmut run`) first")
    statuses = results()
    if not statuses:
        sys.exit("mutmut has no results: run `make mutation` (or `mutmut run`) first")

    counts = Counter(statuses.values())
    total = len(statuses)
    killed = counts.pop("killed", 0)
    survived = counts.pop("survived", 0)
    others = "".join(f", {n} {status}" for status, n in sorted(counts.items()))
    score = f"{killed}/{total} killed ({100 * killed / total:.1f}%)"
    print(f"mutation score: {score}, {survived} survived{others}")

    untested = Counter(" ".join(where(name)) for name, status in statuses.items() if status == "no tests")
    if untested:
        print("no selected test reaches:", ", ".join(f"{f} ({n})" for f, n in sorted(untested.items())))

    survivors: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, status in statuses.items():
        if status == "survived":
            file, function = where(name)
            survivors[file][function].append(name)
    if not survivors:
        return 0

    print(f"\nsurviving mutants ({survived}); inspect one with `.venv/bin/mutmut show NAME`:")
    for file in sorted(survivors):
        print(f"  {file}")
        for function in sorted(survivors[file]):
            print(f"    {function}")
            for name in sorted(survivors[file][function], key=number):
                print(f"      {name}")
                if args.diffs:
                    diff = mutmut("show", name).splitlines()[1:]  # the first line repeats name + status
                    print("\n".join(f"        {line}" for line in diff))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
