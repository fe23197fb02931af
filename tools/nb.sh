#!/usr/bin/env bash
# Dev helper: convert a jupytext percent script to nbs/NAME.ipynb, execute it (all cells, slow ones too,
# so saved outputs come from a real run), clean it and export. Usage: tools/nb.sh SRC.py [NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$1; name=${2:-$(basename "$src" .py)}
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=module://matplotlib_inline.backend_inline
jupytext --quiet --to ipynb --set-kernel backdoor_nb -o "nbs/$name.ipynb" "$src"
(cd nbs && jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=${NB_TIMEOUT:-3600} "$name.ipynb")
nbdev_clean --fname "nbs/$name.ipynb"
nbdev_export --path "nbs/$name.ipynb"
