"The notebooks as a user opens them: the project's kernel is registered by `make install`, every notebook names it, nbdev_clean keeps it."
import copy, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = 'backdoor_nb'

def source_notebooks(): return sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))

def test_notebooks_name_the_project_kernel():
    bad = {p.name: json.loads(p.read_text())['metadata'].get('kernelspec') for p in source_notebooks()}
    bad = {k: v for k, v in bad.items() if v != {'display_name': KERNEL, 'language': 'python', 'name': KERNEL}}
    assert not bad, f'notebooks without the {KERNEL} kernelspec (JupyterLab asks "Select Kernel" on open): {bad}'

def test_nbdev_clean_keeps_kernelspec_and_widget_state():
    from nbdev.clean import clean_nb
    nb = json.loads((ROOT/'nbs'/'10_attacks.ipynb').read_text())
    before = copy.deepcopy(nb['metadata'])
    assert 'application/vnd.jupyter.widget-state+json' in before.get('widgets', {}), 'the attacks notebook lost its saved widget state'
    nb['metadata']['language_info'] = {'name': 'python'}  # what JupyterLab adds on save: cleaned away
    clean_nb(nb, allowed_metadata_keys=[], allowed_cell_metadata_keys=[])
    assert nb['metadata'] == before

def test_install_registers_the_kernel():
    "`make install` registers the kernel in .venv; it runs the Python this test runs in (where backdoor_nb is installed)."
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    try: spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel: raise AssertionError(f'no {KERNEL} kernel: tools/env.sh registers it (ipykernel install --sys-prefix)')
    assert Path(spec.argv[0]).absolute() == Path(sys.executable).absolute(), (spec.argv, sys.executable)  # not resolved: .venv/bin/python links to the system one
    assert spec.language == 'python' and spec.display_name == KERNEL
