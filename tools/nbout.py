"Dev helper: print the text outputs (and image markers) of a notebook's cells. Usage: nbout.py NB [--slow]"
import json, sys
nb = json.load(open(sys.argv[1]))
for i, c in enumerate(nb['cells']):
    if c['cell_type'] != 'code': continue
    src = ''.join(c['source'])
    if '--slow' in sys.argv and not src.startswith('#| slow'): continue
    for o in c.get('outputs', []):
        if 'text' in o: print(f"[{i}]", ''.join(o['text'])[:3000])
        elif 'data' in o:
            d = o['data']; print(f"[{i}]", 'IMAGE' if 'image/png' in d else '', ''.join(d.get('text/plain', ''))[:500])
