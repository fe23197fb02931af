#!/usr/bin/env bash
# Create .venv (if missing) and install backdoor_nb with everything its tests, demo and docs need.
# Idempotent: a stamp file keyed on the install inputs skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.backdoor_nb-installed"
want=$(cat settings.ini setup.py tools/env.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
pip="$VENV/bin/python -m pip --disable-pip-version-check"
$pip install -q --upgrade pip wheel setuptools
# torch + torchvision together from PyPI (there is no CPU torchvision there; the CUDA builds run on CPU).
# Do not pin torch to a local CPU wheel: it breaks torchvision's registered operators.
$pip install -q torch torchvision
# auto_LiRPA 0.3 pins torch<1.13: install it without its pins, plus what it really imports.
$pip install -q --no-deps auto_LiRPA==0.3
$pip install -q -e ".[dev,lirpa]"
# The notebooks' kernelspec names this kernel: JupyterLab from .venv (`make lab`) runs them in .venv's Python.
"$VENV/bin/python" -m ipykernel install --sys-prefix --name backdoor_nb --display-name backdoor_nb >/dev/null
echo "$want" > "$stamp"
