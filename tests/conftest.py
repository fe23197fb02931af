import os
os.environ.setdefault('MPLBACKEND', 'Agg')
import torch
torch.set_num_threads(min(2, torch.get_num_threads()))

import importlib.util
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='session')
def docs_builder():
    "tools/build_docs.py as a module."
    spec = importlib.util.spec_from_file_location('build_docs', ROOT/'tools'/'build_docs.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

@pytest.fixture(scope='session')
def docs_site(docs_builder, tmp_path_factory):
    "The docs site, built once per test session: (site folder, {notebook in nbs/: its page})."
    tmp = tmp_path_factory.mktemp('docs')
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # nbdev finds settings.ini from the working directory
        pages = docs_builder.build_docs(site_dir=tmp/'site', docs_dir=tmp/'src')
    return tmp/'site', pages
