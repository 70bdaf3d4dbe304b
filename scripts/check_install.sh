#!/usr/bin/env bash
# Install check: what `pip install .` and `pipx install .` give a user, proven on this machine.
#
# Builds the wheel (from a copy of the sources, so that no build/ or *.egg-info is left in the
# tree), installs it into a clean virtual environment WITHOUT the dev dependencies, and runs the
# installed command from an empty folder: `scimsync --version` and `scimsync demo` (the demo
# starts its simulators on loopback: no account, no network beyond the package index).
# Fails loudly on a build warning, a module missing from the wheel, or a command that fails.
#
# Usage: scripts/check_install.sh        (PYTHON=python3.12 scripts/check_install.sh to pick one)
# Run by .ci/run before `make test`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/scimsync-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step() { echo "check_install: $*" >&2; }
fail() {
    echo "check_install: FAILED: $*" >&2
    exit 1
}
show_and_fail() {  # show_and_fail LOG MESSAGE
    sed 's/^/    /' "$1" >&2
    fail "$2"
}

step "a clean virtual environment ($("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv "$WORK/venv" || fail "$PYTHON -m venv (on Debian: apt-get install python3-venv)"
VENV_BIN="$WORK/venv/bin"

step "building the wheel"
mkdir "$WORK/src" "$WORK/dist" "$WORK/run"
tar -C "$ROOT" \
    --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./mutants \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude='./.*_cache' --exclude=./.hypothesis \
    -cf - . | tar -C "$WORK/src" -xf -
"$VENV_BIN/python" -m pip wheel --verbose --no-deps --wheel-dir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 ||
    show_and_fail "$WORK/build.log" "pip wheel could not build the package"
# --verbose: pip shows the build backend's output only then (older pips hide it otherwise).
# setuptools reports deprecated or invalid metadata as warnings (e.g. BuildBackendWarning,
# SetuptoolsDeprecationWarning) and builds anyway: a warning today is a failed build later.
if grep -E '[A-Za-z]+Warning\b' "$WORK/build.log" >/dev/null; then
    grep -E -A 6 '[A-Za-z]+Warning\b' "$WORK/build.log" >"$WORK/warnings.log"
    show_and_fail "$WORK/warnings.log" "the build printed warnings (above): fix the packaging metadata in pyproject.toml"
fi
WHEELS=("$WORK"/dist/scimsync-*.whl)
[ "${#WHEELS[@]}" -eq 1 ] && [ -f "${WHEELS[0]}" ] || fail "expected one scimsync wheel in $WORK/dist"
WHEEL=${WHEELS[0]}
VERSION=$(basename "$WHEEL" | cut -d- -f2)

step "checking the wheel's contents ($(basename "$WHEEL"))"
# Every module and data file of the package must be in the wheel: a subfolder that
# package discovery missed would only fail at run time, on the first import of it.
"$VENV_BIN/python" - "$WHEEL" "$WORK/src" <<'EOF' || fail "the wheel lacks files of the package (above)"
import sys
import zipfile
from pathlib import Path

wheel, src = sys.argv[1], Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
wanted = {
    p.relative_to(src).as_posix()
    for p in (src / "scimsync").rglob("*")
    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
}
missing = sorted(wanted - names)
for name in missing:
    print(f"    not in the wheel: {name}", file=sys.stderr)
licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
if not licenses:
    print("    not in the wheel: the LICENSE file (license-files)", file=sys.stderr)
sys.exit(1 if missing or not licenses else 0)
EOF

step "installing the wheel (with its runtime dependencies only)"
"$VENV_BIN/python" -m pip install --quiet "$WHEEL" >"$WORK/install.log" 2>&1 ||
    show_and_fail "$WORK/install.log" "pip install of the wheel failed"
for dev in pytest hypothesis responses scim2_server; do
    if "$VENV_BIN/python" -c "import $dev" 2>/dev/null; then
        fail "$dev is importable in the clean venv: the check would not show a missing runtime dependency"
    fi
done

cd "$WORK/run"  # an empty folder: nothing of the source tree is importable from here
step "scimsync --version"
GOT=$("$VENV_BIN/scimsync" --version 2>&1) || fail "scimsync --version exited $?: $GOT"
[ "$GOT" = "scimsync, version $VERSION" ] || fail "scimsync --version said '$GOT', expected 'scimsync, version $VERSION'"
WHERE=$("$VENV_BIN/python" -c 'import scimsync; print(scimsync.__file__)')
case $WHERE in
    "$WORK/venv/"*) ;;
    *) fail "scimsync was imported from $WHERE, not from the clean venv" ;;
esac

step "scimsync demo"
rc=0
timeout 600 "$VENV_BIN/scimsync" demo </dev/null >"$WORK/demo.log" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || show_and_fail "$WORK/demo.log" "scimsync demo exited $rc"
# The demo's last plan runs after its apply: the closing line (a format scripts read) says no changes.
grep -F "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes." "$WORK/demo.log" >/dev/null ||
    show_and_fail "$WORK/demo.log" "scimsync demo exited 0 but its second plan did not show 'no changes'"

step "OK: $(basename "$WHEEL") installs into a clean venv; scimsync --version and scimsync demo work"
