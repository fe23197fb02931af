#!/usr/bin/env bash
# The one test command: the library is in sync with the notebooks, the notebooks are clean,
# the fast notebook cells pass, and pytest passes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/env.sh
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=Agg
snap() { find "$1" -type f \( -name '*.py' -o -name '*.ipynb' \) -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha256sum; }
before=$(snap backdoor_nb)
nbdev_export
if [ "$before" != "$(snap backdoor_nb)" ]; then
  echo "FAIL: nbdev_export changed backdoor_nb/ (the library was out of sync with nbs/):"; git status --short backdoor_nb || true; exit 1
fi
before=$(snap nbs)
nbdev_clean
if [ "$before" != "$(snap nbs)" ]; then
  echo "FAIL: nbdev_clean changed notebooks (commit cleaned notebooks):"; git status --short nbs || true; exit 1
fi
echo "nbdev_export and nbdev_clean: no changes"
python tools/build_readme.py --check
python tools/bench_tables.py --check
nbdev_test --n_workers "${NBDEV_WORKERS:-2}" ${NBDEV_TEST_ARGS:-}
python -m pytest tests -q ${PYTEST_ARGS:-}
