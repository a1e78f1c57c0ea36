#!/usr/bin/env bash
# Build Openlid's double-click bundle with PyInstaller (packaging/openlid.spec), and check it.
#
#   packaging/build.sh               build dist/openlid/ (and dist/Openlid.app on macOS)
#   packaging/build.sh --check       build, then run the built binary offscreen with --version
#                                    and --self-test; fail if either fails
#   packaging/build.sh --check-only  check an existing build without rebuilding
#
# The Python that builds is $PYTHON (default: .venv/bin/python, or .venv/Scripts/python.exe on
# Windows); it needs Openlid installed (`pip install -e '.[demo]'`) and `pip install pyinstaller`.
# Extra arguments after `--` go to PyInstaller. OPENLID_BUNDLE_MODEL=0 leaves the Gemma model out
# (then --self-test cannot pass). See packaging/README.md for each operating system.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD=1
CHECK=0
PYI_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --check) CHECK=1 ;;
    --check-only) CHECK=1; BUILD=0 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; PYI_ARGS=("$@"); break ;;
    *) echo "build.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"
  elif [[ -x "$ROOT/.venv/Scripts/python.exe" ]]; then PYTHON="$ROOT/.venv/Scripts/python.exe"
  else PYTHON=python3
  fi
fi

case "$(uname -s)" in
  Darwin) BIN="$ROOT/dist/Openlid.app/Contents/MacOS/openlid" ;;
  MINGW*|MSYS*|CYGWIN*) BIN="$ROOT/dist/openlid/openlid.exe" ;;
  *) BIN="$ROOT/dist/openlid/openlid" ;;
esac

if [[ $BUILD -eq 1 ]]; then
  if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "build.sh: PyInstaller is not installed for $PYTHON; run: $PYTHON -m pip install pyinstaller" >&2
    exit 1
  fi
  if ! "$PYTHON" -c "import llama_cpp, PySide6" 2>/dev/null; then
    echo "build.sh: $PYTHON lacks Openlid's dependencies; run: $PYTHON -m pip install -e '$ROOT[demo]'" >&2
    exit 1
  fi
  echo "build.sh: building with $("$PYTHON" -m PyInstaller --version 2>/dev/null) ($PYTHON)"
  "$PYTHON" -m PyInstaller --noconfirm --clean \
    --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" \
    ${PYI_ARGS[@]+"${PYI_ARGS[@]}"} "$ROOT/packaging/openlid.spec"
  echo "build.sh: built $BIN ($(du -sh "$ROOT/dist/openlid" | cut -f1) in dist/openlid)"
fi

if [[ $CHECK -eq 0 ]]; then
  exit 0
fi

if [[ ! -x "$BIN" ]]; then
  echo "build.sh: no built binary at $BIN (build first)" >&2
  exit 1
fi

# Run the bundle as a user would, not as the developer's Python: no virtualenv or source tree
# on the path, a scratch home (settings, logs and the assembled model go there), no display.
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/openlid-check.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
run_bundle() {
  (cd "$SCRATCH" && env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV \
    OPENLID_HOME="$SCRATCH/home" QT_QPA_PLATFORM=offscreen "$BIN" "$@")
}

EXPECTED="$("$PYTHON" -c "import sys; sys.path.insert(0, '$ROOT'); import desktop; print(desktop.__version__)" 2>/dev/null || true)"
echo "build.sh: check 1/2: $BIN --version"
if ! VERSION_OUT="$(run_bundle --version 2>&1)"; then
  echo "$VERSION_OUT" >&2
  echo "build.sh: CHECK FAILED: --version exited with an error" >&2
  exit 1
fi
echo "  $VERSION_OUT"
if [[ -n "$EXPECTED" && "$VERSION_OUT" != *"$EXPECTED"* ]]; then
  echo "build.sh: CHECK FAILED: expected version $EXPECTED" >&2
  exit 1
fi

echo "build.sh: check 2/2: $BIN --self-test"
if ! SELF_TEST_OUT="$(run_bundle --self-test 2>&1)"; then
  echo "$SELF_TEST_OUT"
  echo "build.sh: CHECK FAILED: --self-test failed (logs were in $SCRATCH/home/logs)" >&2
  cat "$SCRATCH"/home/logs/*.log 2>/dev/null | tail -n 30 >&2 || true
  exit 1
fi
echo "$SELF_TEST_OUT"
# The capture's C pass (desktop/engine/_scan.c) must have reached the bundle where the building
# Python runs it.
HERE_PASS="$("$PYTHON" -c "import sys; sys.path.insert(0, '$ROOT'); from desktop.engine.fused_scan import capture_pass; print(capture_pass())" 2>/dev/null || true)"
if [[ "$HERE_PASS" == C,* && "$SELF_TEST_OUT" != *"pass over the scores: $HERE_PASS"* ]]; then
  echo "build.sh: CHECK FAILED: the bundle's capture does not run the C pass ($HERE_PASS here)" >&2
  exit 1
fi
echo "build.sh: check passed"
