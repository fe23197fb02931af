"Shared by the browser tests: Debian's chromium driven through playwright (its own browser download cannot work here)."
import contextlib, functools, http.server, os, shutil, socket, threading
import pytest

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
ARGS = ['--headless=new', '--no-sandbox']

def sync_playwright():
    "playwright's `sync_playwright`, or a skip (a failure in CI) naming what is missing."
    if not CHROMIUM:
        if os.environ.get('CI'): pytest.fail("chromium is missing: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    try: from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get('CI'): pytest.fail("playwright is missing from the dev requirements")
        pytest.skip("playwright is not installed")
    return sync_playwright

@contextlib.contextmanager
def chromium():
    "A headless Debian chromium for the duration of the block."
    with sync_playwright()() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try: yield b
        finally: b.close()

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@contextlib.contextmanager
def serve(folder):
    "Serve `folder` over HTTP on a free localhost port: yields the base URL (`http://127.0.0.1:PORT/`)."
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try: yield f'http://127.0.0.1:{srv.server_port}/'
    finally: srv.shutdown(); srv.server_close()

def free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]
