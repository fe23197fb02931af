"""Benchmark tables in the notebooks, rendered from the JSON the benchmark scripts save (or checked against it).

A markdown cell holds a table between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`. This tool rewrites what lies
between the markers from `benchmarks/results/*.json`, so a figure quoted in a notebook is the one a repeatable run saved;
`--check` (run by `make test`) fails when a notebook's table no longer matches its JSON, or when a marker names no table.

    python tools/bench_tables.py              # rewrite every table in nbs/
    python tools/bench_tables.py --check      # exit 1 on a stale or unknown table
    python tools/bench_tables.py --list       # the tables, their JSON files and the notebooks that show them
    python tools/bench_tables.py --show scan  # print one table

Adding a table is adding one renderer to `TABLES` (name -> JSON files -> markdown) and a marker pair in a notebook.
"""
import argparse, json, math, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results'
MARK = re.compile(r'<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->', re.S)
TABLES = {} # name -> (json file names, renderer)

def table(name, *files):
    "Register `fn(*loaded_json) -> markdown` under `name`; a missing file is passed as None."
    def deco(fn): TABLES[name] = (files, fn); return fn
    return deco

def md(head, rows)->str:
    "A markdown table."
    cell = lambda v: '–' if v is None or v == '-' or (isinstance(v, float) and math.isnan(v)) else str(v)
    return '\n'.join(['| ' + ' | '.join(head) + ' |', '|' + '|'.join('---' for _ in head) + '|']
                     + ['| ' + ' | '.join(cell(v) for v in r) + ' |' for r in rows])

def f2(v, nd=2): return None if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"
def labels(ls): return ', '.join(map(str, ls)) if ls else '–'
def ok(v): return '–' if v is None else ('yes' if v else '**no**')
def source(js, name): return f"\n\n<sub>from `benchmarks/results/{name}`" + (f" (`{' '.join(js['argv'])}`)" if js.get('argv') else '') + f" (torch {js.get('torch', '?')}, {js.get('threads', '?')} threads" + \
    (f", load {js['load'][0]:.1f}" if js.get('load') else '') + \
    (f", load before {js['load_before'][0]:.1f}" if js.get('load_before') else '') + ')</sub>'

@table('scan', 'scan_mnist.json', 'scan_cifar10.json', 'scan_cifar10_aug.json', 'scan_gtsrb.json')
def _scan(*runs):
    rows, dets, names = [], [], []
    for js, name in zip(runs, TABLES['scan'][0]):
        if js is None: continue
        names.append(name)
        for r in js['rows']:
            for d in r['detectors']:
                if d not in dets: dets.append(d)
    for js in runs:
        if js is None: continue
        for r in js['rows']:
            d = r['detectors']
            rows.append([r['dataset'], r['model'], r['truth'], f2(r['clean_acc'], 3), f2(r['asr'], 3)]
                        + [f"{labels(d[k]['flagged'])} ({d[k]['seconds']:.0f} s)" if k in d else '–' for k in dets]
                        + [r['verdict'], f2(r['score']), ok(r['right']), f"{r['scan_seconds']:.0f}"])
    n = sum(r[-2] == 'yes' for r in rows)
    return (md(['data', 'model', 'truth', 'clean acc', 'ASR'] + [f"{k}: flagged (s)" for k in dets]
               + ['verdict', 'score', 'right', 'scan s'], rows)
            + f"\n\n{n}/{len(rows)} verdicts right" + ''.join(source(js, nm) for js, nm in zip(runs, TABLES['scan'][0]) if js is not None))

def _conc(h):
    "The concentration test's candidates and their concentrated ASR ('decided' when it flagged one); '–' where it did not run."
    c = h.get('concentrated')
    if not c: return '–'
    return ', '.join(f"{l}: {a:.2f}" for l, a in c.items()) + (' (**decided**)' if h.get('decided_by') == 'concentration' else '')

@table('identify', 'identify_mnist_halving.json', 'identify_colour.json')
def _identify(*runs):
    rows = []
    for js in runs:
        if js is None: continue
        for r in js['rows']:
            h = r['halving']
            rows.append([r['dataset'], r['model'], r['truth'], h['verdict'], f"{h['asr']:.2f} / {h['next']:.2f}", f2(h['eps']),
                         h['budgets'], f"{h['work'] / 1e3:.0f}k", f"{h['seconds']:.1f}", ok(h['right']), _conc(h)])
    return (md(['data', 'model', 'truth', 'verdict', 'top / next ASR', 'eps', 'budgets', 'image-gradients', 's', 'right',
                'concentration test: label ASR'], rows)
            + ''.join(source(js, nm) for js, nm in zip(runs, TABLES['identify'][0]) if js is not None))

@table('identify-reference', 'identify_mnist.json', 'identify_reference_colour.json')
def _identify_ref(*runs):
    got = _present('identify-reference', runs)
    if not got: return '(no results yet)'
    fmt = lambda h: f"{'–' if h['verdict'] is None else h['verdict']} ({h['asr']:.2f}, {h['seconds']:.1f} s, {h['work'] / 1e3:.0f}k)"
    rows = [[r['dataset'], r['model'], r['truth'], fmt(r['halving']), fmt(r['paper']), ok(r['same'])] for _, js in got for r in js['rows']]
    return (md(['data', 'model', 'truth', 'halving: verdict (ASR, s, work)', 'paper setting', 'same'], rows)
            + ''.join(source(js, f) for f, js in got))

def _present(name, runs):
    "(file name, loaded JSON) of the files of table `name` that exist."
    return [(f, js) for f, js in zip(TABLES[name][0], runs) if js is not None]

@table('neural-cleanse', 'neural_cleanse_mnist.json', 'neural_cleanse_cifar10.json')
def _nc(*runs):
    got = _present('neural-cleanse', runs)
    if not got: return '(no results yet)'
    rows, notes = [], []
    for f, js in got:
        rows += [[r['ds'], r['name'], r['target'] if r['backdoored'] else '–', labels(r['flagged']), f2(r['score']), f2(r['target_index']),
                  f"{r['steps']:.0f}", r['unreached'], f"{r['seconds']:.1f}", ok(r['ok'])] for r in js['rows']]
        sp = js.get('speed') or {}
        n = len(js['rows'])
        notes.append((f"{js['rows'][0]['ds']}: AUROC of the max anomaly index {f2(js.get('auroc'), 3)} over {n} models" if n > 1 else '')
                     + (f"; {sp['steps']} steps of all labels batched {sp['batched_s']:.1f} s vs one label at a time {sp['sequential_s']:.1f} s"
                        if sp else '') + source(js, f))
    return (md(['data', 'model', 'target', 'flagged', 'max anomaly', 'target index', 'mean steps', 'unreached', 's', 'right'], rows)
            + ''.join('\n\n' + n.lstrip('; ') for n in notes))

@table('tnd', 'tnd_mnist.json', 'tnd_cifar10.json')
def _tnd(*runs):
    got = _present('tnd', runs)
    if not got: return '(no results yet)'
    import statistics
    dets = [k for k in ('DL-TND', 'DF-TND', 'NC') if any(r.get(k) for _, js in got for r in js['rows'])]
    cell = lambda d: '–' if not d else f"{labels(d['flagged'])} ({d['score']:.2f}){'' if d['ok'] is not False else ' ✗'}"
    rows = [[r['ds'], r['name'], r['target'] if r['backdoored'] else '–'] + [cell(r.get(k)) for k in dets] for _, js in got for r in js['rows']]
    summary = []
    for f, js in got:
        ds = js['rows'][0]['ds']
        for k in dets:
            rs = [r for r in js['rows'] if r.get(k)]
            if not rs: continue
            bd = [r for r in rs if r['backdoored'] and r['target'] is not None]; cl = [r for r in rs if not r['backdoored']]
            summary.append([f"{k} ({ds})", js['auroc'].get(k) if len(rs) > 1 else '–', f"{sum(r['target'] in r[k]['flagged'] for r in bd)} / {len(bd)}",
                            f"{sum(bool(r[k]['flagged']) for r in cl)} / {len(cl)}", f"{statistics.median(r[k]['seconds'] for r in rs):.1f}"])
        summary += [[f"{k} ({ds})", v, '', '', ''] for k, v in js['auroc'].items() if k not in dets and len(js['rows']) > 1]
    return (md(['data', 'model', 'target'] + [f"{k}: flagged (max index)" for k in dets], rows)
            + '\n\n✗: a clean model flagged or a target missed.\n\n'
            + md(['detector', 'AUROC', 'target flagged (single-target models)', 'clean models flagged', 's per model (median)'], summary)
            + ''.join(source(js, f) for f, js in got))

@table('mitigation', 'mitigation_mnist.json', 'mitigation_cifar10.json')
def _mitigation(*runs):
    got = _present('mitigation', runs)
    if not got: return '(no results yet)'
    rows = [[r['ds'], r['name'], r['method'], f2(r['acc0'], 3), f2(r['asr0'], 3), f2(r['acc'], 3), f2(r['asr'], 3), f"{r['sec']:.1f}",
             ok(r['ok']), r.get('extra') or ''] for _, js in got for r in js['rows']]
    return md(['data', 'model', 'repair', 'acc before', 'ASR before', 'acc after', 'ASR after', 's', 'target met', 'note'], rows) + \
        ''.join(source(js, f) for f, js in got)

@table('crown-restore', 'crown_restore_mnist.json', 'crown_restore_cifar10.json')
def _crown(*runs):
    got = _present('crown-restore', runs)
    if not got: return '(no results yet)'
    rows = [[r['ds'], r['model'], r['seed'], r['n_clean'], r['grad'], f2(r['asr'], 3), f2(r['iou']), f2(r['true_asr'], 3), f"{r['seconds']:.1f}"]
            for _, js in got for r in js]
    return md(['data', 'model', 'seed', 'clean images', 'gradient', 'restored ASR', 'mask IoU', 'true trigger ASR', 's'], rows) + \
        ''.join(f"\n\n<sub>from `benchmarks/results/{f}`</sub>" for f, _ in got)

@table('mine', 'mine_mnist.json', 'mine_cifar10.json')
def _mine(*runs):
    got = _present('mine', runs)
    if not got: return '(no results yet)'
    pair = lambda r, k: f"{f2(r['acc_' + k], 3)} / {f2(r['asr_' + k], 4)}" if 'acc_' + k in r else '–'
    rows = [[r['ds'], r['seed'], f"{r['valid']}/{r['n_levels']}", f2(r['acc0'], 3), f2(r['asr0'], 3), len(r['curves']['dist']['epoch']) - 1]
            + [pair(r, k) for k in ('dist', 'once', 'single', 'full')] + [f"{r['t_total']:.0f}"] for _, js in got for r in js]
    return md(['data', 'seed', 'valid levels', 'acc before', 'ASR before', 'epochs', 'unlearn with the distribution: acc / ASR',
               'distribution drawn once: acc / ASR', 'one trigger: acc / ASR', 'full trigger: acc / ASR', 's'], rows) + \
        ''.join(f"\n\n<sub>from `benchmarks/results/{f}`</sub>" for f, _ in got)

@table('concentration', 'concentration_cifar10.json')
def _concentration(js):
    if js is None: return '(no results yet)'
    rows = []
    for spec, m in js['models'].items():
        for r in m['labels']:
            if r['asr'] >= 0.5 or r['label'] == m.get('target'):  # the labels that transfer, and the backdoor's target
                rows.append([spec, r['label'], 'target' if r['label'] == m.get('target') else '', f2(r['asr']), f"**{f2(r['concentrated'])}**",
                             f2(r['base_rate']), f2(r['random']), f2(r['shuffled']), f2(r['class_min']), f2(r['class_median'])])
    return md(['model', 'label', '', 'transfer ASR', f"kept on {js['frac']:.0%} of the pixels", 'base rate', 'random direction',
               'shuffled', 'source class min', 'median'], rows) + \
        f"\n\n<sub>from `benchmarks/results/concentration_cifar10.json` (eps {js['eps']}, 500 held-out images; torch {js['torch']}, load {js['load'][0]:.1f})</sub>"

@table('nc-peer', 'neural_cleanse_mnist_peer_trojanzoo.json', 'neural_cleanse_mnist_peer_trojanzoo_bs32_e100.json')
def _nc_peer(*runs):
    got = _present('nc-peer', runs)
    if not got: return '(no results yet)'
    rows = []
    for f, js in got:
        h = js['rows'][0]['peer']['hyper']
        setting = f"TrojanZoo {h['defense_remask_epoch']} epochs x batch {h['batch_size']}"
        for r in js['rows']:
            q = r['peer']
            rows.append([setting, r['name'], r['target'] if r['target'] is not None else '–', labels(r['flagged']), f2(r['score']),
                         f"{r['cpu_seconds']:.1f}", labels(q['flagged']), f2(q['max_anomaly']), f"{q['cpu_seconds']:.1f}"])
        p = js['peer']
        rows.append([setting, '**all**', '', f"{p['our_targets']} targets", '', f"{p['cpu_s']:.1f}", f"{p['peer_targets']} targets", '',
                     f"{p['peer_cpu_s']:.1f} (**{p['cpu_ratio']:.1f}x** ours)"])
    return md(['peer setting', 'model', 'target', 'backdoor_nb flags', 'max anomaly', 'CPU s', 'TrojanZoo flags', 'max anomaly', 'CPU s'], rows) + \
        ''.join(source(js, f) for f, js in got)

@table('evaluate', 'evaluate_mnist.json')
def _evaluate(js):
    if js is None: return '(no results yet)'
    rows = [[k, m['n'], m['n_backdoored'], f2(m['auroc'], 3), f2(m['tpr_at_5fpr']), f2(m['flag_tpr']), f2(m['flag_fpr']),
             f2(m['target_acc']), f"{m['mean_seconds']:.1f}"] for k, m in js['metrics'].items()]
    return md(['detector', 'models', 'backdoored', 'AUROC', 'TPR at 5 % FPR', 'flag TPR', 'flag FPR', 'target accuracy', 'mean s'], rows) + \
        "\n\n<sub>from `benchmarks/results/evaluate_mnist.json`</sub>"

def render(name)->str:
    files, fn = TABLES[name]
    load = lambda f: json.loads((RESULTS / f).read_text()) if (RESULTS / f).exists() else None
    return fn(*[load(f) for f in files]).strip() + '\n'

def cells(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    return nb, [c for c in nb['cells'] if c['cell_type'] == 'markdown' and '<!-- bench:' in ''.join(c['source'])]

def sync(check:bool)->list:
    "Rewrite (or check) every marked table under nbs/; returns the problems found."
    problems, cache = [], {}
    for p in sorted((ROOT / 'nbs').glob('*.ipynb')):
        nb, marked = cells(p)
        changed = False
        for c in marked:
            src = ''.join(c['source'])
            def sub(m):
                name = m['name']
                if name not in TABLES: problems.append(f"{p.name}: unknown table {name!r}"); return m[0]
                if name not in cache: cache[name] = render(name)
                if m['body'] != cache[name]: problems.append(f"{p.name}: table {name!r} differs from its JSON")
                return f"<!-- bench:{name} -->\n{cache[name]}<!-- /bench:{name} -->"
            new = MARK.sub(sub, src)
            if new != src:
                changed = True
                c['source'] = new.splitlines(keepends=True)
        if changed and not check: p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return problems

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--check', action='store_true'); ap.add_argument('--list', action='store_true'); ap.add_argument('--show')
    a = ap.parse_args()
    if a.list:
        where = {n: [p.name for p in sorted((ROOT / 'nbs').glob('*.ipynb')) if f'<!-- bench:{n} -->' in p.read_text()] for n in TABLES}
        for n, (files, _) in TABLES.items(): print(f"{n:20} {', '.join(files):70} {', '.join(where[n]) or '(in no notebook)'}")
        return
    if a.show:
        if a.show not in TABLES: ap.error(f"--show: no table {a.show!r} (tables: {', '.join(TABLES)})")
        print(render(a.show)); return
    problems = sync(a.check)
    if a.check:
        if problems: print('bench_tables --check:\n  ' + '\n  '.join(problems) + '\nrun `python tools/bench_tables.py`'); sys.exit(1)
        print('bench_tables: every notebook table matches its JSON')
    elif problems: print('\n'.join(p for p in problems if 'unknown' in p) or f"{len(problems)} table(s) rewritten")

if __name__ == '__main__': main()
