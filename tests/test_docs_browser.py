"""The docs site in a real browser (Debian's chromium through playwright), served from a local HTTP server: every page loads
with no console error, no failed request and nothing fetched from outside; every image loads; every table-of-contents
entry has a title and an anchor on the page; no TeX or MathML shows as text; each widget renders its saved view;
show_doc signatures fit the text column at 1400 px. A failing page leaves a screenshot (named in the failure)."""
import re
from pathlib import Path
import pytest
from browser import chromium, serve

ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = {'width': 1400, 'height': 900}

PAGE_FACTS = '''() => {
  const visible = e => e.getClientRects().length > 0;
  const toc = [...document.querySelectorAll('.md-sidebar--secondary a.md-nav__link')].map(a => [a.textContent.trim(), a.getAttribute('href')]);
  const walk = document.createTreeWalker(document.querySelector('.md-content'), NodeFilter.SHOW_TEXT);
  let text = '';  // the prose a reader sees: visible text outside code, math and scripts
  for (let n; (n = walk.nextNode());)
    if (!n.parentElement.closest('script, style, pre, code, math') && visible(n.parentElement)) text += n.textContent + ' ';
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const sigs = [...document.querySelectorAll('.celltag_show_doc pre')];
  sigs.forEach(p => p.style.whiteSpace = 'pre');  // as if it could not wrap: does every line fit?
  const facts = {
    images: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80)),
    toc_untitled: toc.filter(([t, h]) => !t).map(([t, h]) => h),
    toc_dangling: toc.filter(([t, h]) => h.startsWith('#') && !document.getElementById(decodeURIComponent(h.slice(1)))).map(([t, h]) => t + ' ' + h),
    n_toc: toc.length,
    raw_tex: (text.match(/<\\/?math|\\$[^\\s$]{1,20}|\\\\[a-zA-Z]{2,}/g) || []),
    n_views: views.length,
    empty_widgets: views.filter(s => { const w = s.parentElement.querySelector('.widget-subarea');
                                        return !w || !visible(w) || w.getBoundingClientRect().height < 20 || !(w.textContent.trim() || w.querySelector('img, canvas, svg')); }).length,
    wide_signatures: sigs.filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.split('\\n')[0].slice(0, 60)),
  };
  sigs.forEach(p => p.style.whiteSpace = '');
  return facts;
}'''

def page_problems(browser, url:str, base:str, shot:Path)->tuple:
    "Load `url` and list what is wrong with it: (problems, facts). A screenshot goes to `shot` when something is."
    pg = browser.new_page(viewport=VIEWPORT)
    errors, failed, outside = [], [], []
    pg.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
    pg.on('pageerror', lambda e: errors.append(str(e)))
    pg.on('requestfailed', lambda r: failed.append(f'{r.url} ({r.failure})'))
    pg.on('response', lambda r: failed.append(f'{r.url} ({r.status})') if r.status >= 400 else None)
    pg.on('request', lambda r: outside.append(r.url) if not r.url.startswith((base, 'data:', 'blob:')) else None)
    try:
        pg.goto(url); pg.wait_for_load_state('networkidle')  # widgets render on `load`
        facts = pg.evaluate(PAGE_FACTS)
        problems = [f'{k}: {v}' for k, v in [('console errors', errors), ('failed requests', failed), ('requests leaving localhost', outside),
                                            ('images not loaded', facts['images']), ('untitled TOC entries', facts['toc_untitled']),
                                            ('TOC anchors missing from the page', facts['toc_dangling']), ('TeX/MathML shown as text', facts['raw_tex']),
                                            ('widget views not rendered', facts['empty_widgets']),
                                            ('signatures wider than the text column at 1400 px', facts['wide_signatures'])] if v]
        if problems: pg.screenshot(path=str(shot), full_page=True); problems.append(f'screenshot: {shot}')
        return problems, facts
    finally: pg.close()

@pytest.fixture(scope='module')
def browser():
    with chromium() as b: yield b

@pytest.fixture(scope='module')
def served_site(docs_site):
    site, pages = docs_site
    with serve(site) as base: yield base, site, pages

def test_checks_can_fail(browser, tmp_path):
    "A page with each defect: the checks name every one of them."
    (tmp_path/'bad.html').write_text('''<html><body><div class="md-sidebar--secondary"><a class="md-nav__link" href="#gone">Gone</a>
        <a class="md-nav__link" href="#here"></a></div><div class="md-content"><h2 id="here">Here</h2><p>costs $x_1$ and \\\\argmax</p>
        <img src="missing.png"><img src="https://example.invalid/x.png">
        <div class="jp-RenderedMarkdown celltag_show_doc"><pre>def f(''' + 'x:int=1, ' * 40 + ''')</pre></div>
        <div><script type="application/vnd.jupyter.widget-view+json">{"model_id": "m"}</script></div>
        <script>console.error("boom")</script></div></body></html>''')
    with serve(tmp_path) as base:
        problems, facts = page_problems(browser, base + 'bad.html', base, tmp_path/'bad.png')
    text = '\n'.join(problems)
    for what in ['console errors: [', 'missing.png (404)', 'requests leaving localhost', 'images not loaded', 'untitled TOC entries: [\'#here\']',
                 'TOC anchors missing from the page: [\'Gone #gone\']', '$x_1', '\\\\argmax', 'widget views not rendered: 1',
                 'signatures wider than the text column', 'screenshot:']:
        assert what in text, (what, problems)
    assert (tmp_path/'bad.png').is_file()

def test_every_page(browser, served_site, tmp_path):
    "Every page of the site, including those mkdocs adds (404.html); the widget pages render each saved widget view."
    base, site, pages = served_site
    names = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html'))
    assert {p.relative_to(site).as_posix() for p in pages.values()} <= set(names)
    bad, n_views = {}, 0
    for name in names:
        problems, facts = page_problems(browser, base + name, base, tmp_path/(name.replace('/', '_') + '.png'))
        if problems: bad[name] = problems
        n_views += facts['n_views']
        if name != '404.html': assert facts['n_toc'] > 0, f'{name}: no table of contents'
    assert not bad, '\n'.join(f'{k}:\n  ' + '\n  '.join(v) for k, v in bad.items())
    want = sum(len(re.findall(r'application/vnd\.jupyter\.widget-view\+json', nb.read_text())) for nb in pages)
    assert want > 0 and n_views == want, f'{n_views} widget views on the pages, {want} in the notebooks'
