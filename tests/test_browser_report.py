"The scan's HTML report in a real browser (Debian's chromium through playwright): every figure loads, nothing is fetched, no console error."
from backdoor_nb.scan import scan, ToyBackdoor, toy_images
from browser import chromium

def test_report_opens_with_every_figure(tmp_path):
    x, y = toy_images(300)
    rep = scan(ToyBackdoor(), (x, y), config={'nc': dict(max_steps=80), 'smoothinv': dict(eps=1.5, n_noise=8, steps=60)},
               progress=False, device='cpu', name='toy')
    path = tmp_path / 'report.html'; rep.to_html(path, x=x[:3])
    with chromium() as b:
        pg = b.new_page(); errors, requests = [], []
        pg.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
        pg.on('pageerror', lambda e: errors.append(str(e)))
        pg.on('request', lambda r: requests.append(r.url))
        pg.goto(path.resolve().as_uri()); pg.wait_for_load_state('load')
        n, loaded = pg.evaluate("[document.images.length, [...document.images].filter(i => i.complete && i.naturalWidth > 0).length]")
        heading = pg.locator('h1').inner_text()
        if n != loaded or errors: pg.screenshot(path=str(tmp_path / 'report.png'), full_page=True)
    assert n == 3 and loaded == n, (n, loaded)  # trigger + nc chart + smoothinv chart
    assert not errors, errors
    assert all(u.startswith(('file:', 'data:')) for u in requests), [u for u in requests if not u.startswith(('file:', 'data:'))]
    assert 'BACKDOORED' in heading and '3' in heading
