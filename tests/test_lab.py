"""The notebooks as a user opens them: the project's kernel is registered by `make install`, every notebook names it, nbdev_clean
keeps it; in JupyterLab (headless chromium) a package widget runs in that kernel and answers its controls."""
import copy, json, os, signal, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from browser import chromium, free_port

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

# --- JupyterLab in a real browser: the project's kernel runs a package widget, a control changes its output -------------
WIDGET_NB = {'cells': [{'cell_type': 'code', 'execution_count': None, 'id': 'w1', 'metadata': {}, 'outputs': [], 'source': [
    'import torch\n', 'from torch import nn\n', 'from backdoor_nb.attacks import TriggerPreview\n', 'torch.manual_seed(0)\n',
    'TriggerPreview(nn.Sequential(nn.Flatten(), nn.Linear(144, 3)), torch.rand(4, 1, 12, 12), ["a", "b", "c"], device="cpu")']}],
    'metadata': {'kernelspec': {'display_name': KERNEL, 'language': 'python', 'name': KERNEL}}, 'nbformat': 4, 'nbformat_minor': 5}

def _get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r: return r.status

@pytest.fixture
def lab(tmp_path):
    "JupyterLab on a free localhost port, token-less, in a temp dir with its own config, settings and runtime folders."
    root, port = tmp_path/'root', free_port()
    root.mkdir(); (root/'widget.ipynb').write_text(json.dumps(WIDGET_NB))
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}  # the kernel uses the inline backend, as a user's does
    env.update({f'JUPYTER{k}': str(tmp_path/v) for k, v in [('_CONFIG_DIR', 'config'), ('_RUNTIME_DIR', 'runtime'), ('_DATA_DIR', 'data'),
                                                            ('LAB_SETTINGS_DIR', 'settings'), ('LAB_WORKSPACES_DIR', 'workspaces')]})
    log = open(tmp_path/'lab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', f'--port={port}', '--ServerApp.ip=127.0.0.1', '--ServerApp.allow_root=True',
                             '--IdentityProvider.token=', '--ServerApp.password=', '--ServerApp.disable_check_xsrf=True',
                             f'--ServerApp.root_dir={root}',
                             '--LabApp.expose_app_in_browser=True', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                             '--LabApp.news_url=None'], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f'http://127.0.0.1:{port}/'
    try:
        for _ in range(240):
            if proc.poll() is not None: pytest.fail(f'JupyterLab exited ({proc.returncode}):\n' + (tmp_path/'lab.log').read_text()[-3000:])
            try:
                if _get(base + 'api/status') == 200: break
            except OSError: time.sleep(0.5)
        else: pytest.fail('JupyterLab did not answer within 2 minutes:\n' + (tmp_path/'lab.log').read_text()[-3000:])
        yield base
    finally:
        try: urllib.request.urlopen(urllib.request.Request(base + 'api/shutdown', method='POST'), timeout=10)  # stops its kernels too
        except OSError: pass
        try: proc.wait(30)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        log.close()

def test_widget_responds_in_jupyterlab(lab, tmp_path):
    "Open a notebook in JupyterLab with the project's kernel, run it, move the `size` slider: the stamped images are redrawn."
    shot = tmp_path/'lab.png'
    with chromium() as b:
        pg = b.new_page(viewport={'width': 1400, 'height': 900})
        try:
            pg.goto(lab + 'lab/tree/widget.ipynb')
            kernel = pg.wait_for_function('''() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return k && k.status === 'idle' && k.name }''', timeout=120_000).json_value()
            assert kernel == KERNEL  # started from the notebook's kernelspec, no "Select Kernel" dialog
            pg.evaluate('() => window.jupyterapp.commands.execute("notebook:run-all-cells")')
            img = pg.locator('.jp-OutputArea-output .widget-output img').first
            img.wait_for(timeout=120_000)
            before = img.get_attribute('src')
            slider = pg.locator('.widget-hslider').filter(has=pg.locator('label', has_text='size'))
            assert slider.locator('.widget-readout').inner_text().strip() == '3'
            slider.locator('.noUi-handle').focus(); pg.keyboard.press('ArrowRight')
            pg.wait_for_function('(old) => { const i = document.querySelector(".jp-OutputArea-output .widget-output img");'
                                 ' return i && i.src !== old }', arg=before, timeout=60_000)
            assert slider.locator('.widget-readout').inner_text().strip() == '4'
            assert pg.locator('.jp-OutputArea-output .jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
        except Exception as e:
            pg.screenshot(path=str(shot), full_page=True)
            raise AssertionError(f'{e}\nscreenshot: {shot}\nJupyterLab log: {tmp_path/"lab.log"}') from e
