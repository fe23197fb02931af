"The scan's HTML report in a real browser (Debian's chromium through playwright): every figure loads, nothing is fetched, no console error."
import os, shutil
from pathlib import Path
import pytest
from backdoor_nb.scan import scan, ToyBackdoor, toy_images

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')

def _browser():
    if not CHROMIUM:
        if os.environ.get('CI'): pytest.fail("chromium is missing: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")
    try: from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get('CI'): pytest.fail("playwright is missing from the dev requirements")
        pytest.skip("playwright is not installed")
    return sync_playwright

def test_report_opens_with_every_figure(tmp_path):
    sync_playwright = _browser()
    x, y = toy_images(300)
    rep = scan(ToyBackdoor(), (x, y), config={'nc': dict(max_steps=80), 'smoothinv': dict(eps=1.5, n_noise=8, steps=60)},
               progress=False, device='cpu', name='toy')
    path = tmp_path / 'report.html'; rep.to_html(path, x=x[:3])
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--headless=new', '--no-sandbox'])
        try:
            pg = b.new_page(); errors, requests = [], []
            pg.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
            pg.on('pageerror', lambda e: errors.append(str(e)))
            pg.on('request', lambda r: requests.append(r.url))
            pg.goto(path.resolve().as_uri()); pg.wait_for_load_state('load')
            n, loaded = pg.evaluate("[document.images.length, [...document.images].filter(i => i.complete && i.naturalWidth > 0).length]")
            heading = pg.locator('h1').inner_text()
            if n != loaded or errors: pg.screenshot(path=str(tmp_path / 'report.png'), full_page=True)
        finally: b.close()
    assert n == 3 and loaded == n, (n, loaded)  # trigger + nc chart + smoothinv chart
    assert not errors, errors
    assert all(u.startswith(('file:', 'data:')) for u in requests), [u for u in requests if not u.startswith(('file:', 'data:'))]
    assert 'BACKDOORED' in heading and '3' in heading
