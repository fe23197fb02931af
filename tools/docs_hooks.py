"""mkdocs hooks for tools/build_docs.py (named in mkdocs.yml): each page's table of contents is read from its rendered headings.

mkdocs-jupyter renders a notebook's HTML with nbconvert but builds the table of contents from a separate markdown pass
(Python-Markdown's toc), whose slugs and titles differ from nbconvert's: headings that are inline code or links get a
blank title and `#_1` anchors, a repeated heading gets `#name_1` though the page has two `id="name"`. Here the ids of the
rendered headings are made unique (a repeat gets `_1`, `_2`, ...) and the table of contents is built from them, so every
entry has its heading's text and points at an id that exists.
"""
import html, re
from mkdocs.structure.toc import get_toc

_HEADING = re.compile(r'<h([1-6])([^>]*?)\sid="([^"]*)"([^>]*)>(.*?)</h\1>', re.S)
_ANCHOR = re.compile(r'<a class="anchor-link"[^>]*>.*?</a>', re.S)

def heading_text(inner:str)->str:
    "Plain text of a heading's inner HTML, without nbconvert's `¶` anchor link."
    return html.unescape(re.sub(r'<[^>]+>', '', _ANCHOR.sub('', inner))).strip()

def unique_headings(content:str)->tuple:
    "Give repeated heading ids a suffix (`_1`, `_2`, ...): (new HTML, [(level, id, text)])."
    taken = set(re.findall(r'\sid="([^"]*)"', content))
    seen, heads = set(), []
    def sub(m):
        level, pre, hid, post, inner = m.groups()
        new, n = hid, 0
        while new in seen: n += 1; new = f'{hid}_{n}'
        while n and new in taken: n += 1; new = f'{hid}_{n}'  # never reuse an id the page has elsewhere
        seen.add(new); taken.add(new)
        if new != hid: inner = inner.replace(f'href="#{hid}"', f'href="#{new}"')
        heads.append((int(level), new, heading_text(inner)))
        return f'<h{level}{pre} id="{new}"{post}>{inner}</h{level}>'
    return _HEADING.sub(sub, content), heads

def toc_tokens(heads:list)->list:
    "Nest `(level, id, text)` headings the way Python-Markdown's toc does (a heading holds the deeper ones after it)."
    root = {'level': 0, 'children': []}
    stack = [root]
    for level, hid, text in heads:
        tok = {'level': level, 'id': hid, 'name': html.escape(text, quote=False), 'children': []}
        while stack[-1]['level'] >= level: stack.pop()
        stack[-1]['children'].append(tok); stack.append(tok)
    return root['children']

def on_page_content(content, page, config, files):
    content, heads = unique_headings(content)
    page.toc = get_toc(toc_tokens(heads))
    return content
