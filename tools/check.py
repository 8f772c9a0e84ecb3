"""`make test`: every check a change must pass, each failing loudly.

1. library and notebooks in sync: `nbdev_export` and `nbdev_clean` change nothing; the house rules of `tools/layers.py`
   hold (imports point down the numbering, benchmarks only in bench.py, notebooks cite nothing outside the repository);
2. `README.md` is what `nbs/index.ipynb` renders to;
3. `nbdev_test` runs every notebook and at least one ran; ends with `N passed, N failed`;
4. the docs build offline (`nbdev_proc_nbs`, `smalldocs render`) without a warning, one page per notebook under the name
   Quarto gives it, and every exported module has a page.

`make browser-test` (tools/browser_test.py) checks the widgets and the docs pages in a browser; it is not part of this.
"""
import argparse, hashlib, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ.setdefault('MPLBACKEND', 'Agg')
sys.path.insert(0, str(ROOT/'tools'))
from readme import render_readme, offline_env  # noqa: E402

def run(*cmd, capture=False):
    print('$', ' '.join(map(str, cmd)), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, text=True, capture_output=capture, env=offline_env())

def snapshot(*dirs):
    out = {}
    for d in dirs:
        for p in sorted((ROOT/d).rglob('*')):
            if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts:
                out[str(p.relative_to(ROOT))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out

def check_sync():
    before = snapshot('nbs', 'powerset_align')
    for cmd in ('nbdev_export', 'nbdev_clean'):
        if run(BIN/cmd).returncode: return f'{cmd} failed'
    after = snapshot('nbs', 'powerset_align')
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        return ('nbdev_export/nbdev_clean changed these files, so the library and notebooks were not in sync '
                '(the files are now fixed: review and commit them):\n  ' + '\n  '.join(changed))

def check_layers():
    from layers import problems
    ps = problems()
    if ps: return 'house rules broken (tools/layers.py):\n  ' + '\n  '.join(ps)

def check_readme():
    if run(BIN/'nbdev_proc_nbs', '--file_glob', 'index.ipynb').returncode: return 'nbdev_proc_nbs on index.ipynb failed'
    if not (ROOT/'_proc'/'index.ipynb').exists(): return 'nbs/index.ipynb is missing: README.md is rendered from it'
    want = render_readme(ROOT/'_proc'/'index.ipynb')
    have = (ROOT/'README.md').read_text() if (ROOT/'README.md').exists() else ''
    if want != have:
        return 'README.md is not what nbs/index.ipynb renders to: run `.venv/bin/python tools/readme.py` and commit it'

def notebooks():
    from nbdev.config import get_config
    from nbdev.doclinks import nbglob
    from nbdev.test import _keep_file
    with_cwd = Path.cwd(); os.chdir(ROOT)
    try: files = [f for f in sorted(nbglob(as_path=True)) if _keep_file(f, '.notest')]
    finally: os.chdir(with_cwd)
    return files

def check_tests():
    files = notebooks()
    if not files: return 'no notebook was found to test: 0 passed, 0 failed counts as a failure'
    t0 = time.time()
    res = run(BIN/'nbdev_test', '--timing', '--n_workers', os.environ.get('NBDEV_WORKERS', '2'), capture=True)
    sys.stdout.write(res.stdout); sys.stderr.write(res.stderr)
    failed = set()
    if res.returncode:
        tail = res.stderr.split('Failed On The Following Notebooks:')[-1]
        failed = {f.name for f in files if re.search(rf'^\s*{re.escape(f.name)}\s*$', tail, re.M)}
        if not failed: failed = {f.name for f in files}
    elif 'No files were eligible' in res.stdout: return 'nbdev_test found no notebook'
    n_failed = len(failed) if res.returncode else 0
    print(f'{len(files) - n_failed} passed, {n_failed} failed  ({time.time() - t0:.0f} s)', flush=True)
    if res.returncode: return 'notebook tests failed: ' + ', '.join(sorted(failed))

WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json'

def page_names(proc):
    """Name each processed notebook's page as Quarto does, after its front matter's `output-file` (00_games -> games.html,
    the name nbdev's doc links use), which smalldocs does not read; the sidebar follows. A widget's output, which needs a
    live kernel, is left out of the page: its text is a widget's repr, and the figure it drew (its static image, or
    the cell's own image output) stays. Returns {page: notebook}."""
    renamed, pages = {}, {}
    for nb in sorted(proc.rglob('*.ipynb')):
        j = json.loads(nb.read_text())
        for c in j['cells']:
            for o in c.get('outputs', []):
                if WIDGET_VIEW in o.get('data', {}):
                    o['data'] = {k: v for k, v in o['data'].items() if k.startswith('image/')}
            if 'outputs' in c: c['outputs'] = [o for o in c['outputs'] if o.get('data', True)]
        new = nb
        head = j['cells'][0] if j['cells'] and j['cells'][0]['cell_type'] == 'raw' else None
        m = re.search(r'^output-file:\s*(\S+)\s*\n', ''.join(head['source']), re.M) if head else None
        if m:
            src = ''.join(head['source']); head['source'] = src[:m.start()] + src[m.end():]
            new = nb.with_name(Path(m.group(1)).stem + '.ipynb')
        nb.write_text(json.dumps(j, indent=1, ensure_ascii=False))
        if new != nb:
            if new.exists(): raise ValueError(f'{nb.name} and {new.name} would both be the page {new.stem}.html')
            nb.rename(new); renamed[nb.relative_to(proc).as_posix()] = new.relative_to(proc).as_posix()
        pages[new.relative_to(proc).with_suffix('.html').as_posix()] = nb.relative_to(proc).as_posix()
    side = proc/'sidebar.yml'
    if side.exists():
        side.write_text(re.sub(r'(?m)(^\s*-\s+)(\S+\.ipynb)\s*$', lambda m: m.group(1) + renamed.get(m.group(2), m.group(2)), side.read_text()))
    return pages

def mixed_import_cells():
    "Cells that import and also run code: nbdev runs every cell with an import (nested ones too) to build the docs, and warns"
    import ast
    out = []
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):
        if '.ipynb_checkpoints' in nb.parts: continue
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            src = ''.join(c['source'])
            if c['cell_type'] != 'code' or 'nbdev_export()' in src: continue
            if re.search(r'^#\|\s*(export|exports|exporti|exec_doc|eval:\s*false)\b', src, re.M | re.I): continue
            try: nodes = list(ast.walk(ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!'))))))
            except SyntaxError: continue
            if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes) and any(isinstance(n, (ast.Expr, ast.Assign)) for n in nodes):
                out.append(f'{nb.relative_to(ROOT)} cell {i}')
    return out

def check_docs():
    mixed = mixed_import_cells()
    if mixed: return ('these cells import and also run code; nbdev runs them to build the docs (and warns): give the imports '
                      'a cell of their own, at the top level:\n  ' + '\n  '.join(mixed))
    shutil.rmtree(ROOT/'_proc', ignore_errors=True)
    # `--file_glob`: nbdev_proc_nbs passes an empty glob to the sidebar, which then lists nbdev.yml and styles.css as pages
    res = run(BIN/'nbdev_proc_nbs', '--file_glob', '*.ipynb', capture=True)
    sys.stdout.write(res.stdout); sys.stderr.write(res.stderr)
    if res.returncode: return 'nbdev_proc_nbs failed'
    if 'Warning' in res.stderr:
        return ('nbdev_proc_nbs warned (see above); "cells containing imports and other code": give the imports a cell of '
                'their own (nbdev runs import cells to build the docs)')
    pages = page_names(ROOT/'_proc')
    res = run(BIN/'smalldocs', 'render', '-q', '_proc', capture=True)
    sys.stdout.write(res.stdout[-3000:]); sys.stderr.write(res.stderr[-3000:])
    if res.returncode: return 'smalldocs render failed'
    warnings = [l for l in (res.stdout + res.stderr).splitlines() if l.startswith('warning')]
    site = ROOT/'_proc'/'_docs'
    shutil.rmtree(ROOT/'_docs', ignore_errors=True); shutil.move(site, ROOT/'_docs')
    docs = ROOT/'_docs'
    exported = {}
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', nb.read_text())
        if m: exported[m.group(1)] = nb.relative_to(ROOT/'nbs').as_posix()
    modules = {p.stem for p in (ROOT/'powerset_align').glob('*.py') if not p.stem.startswith('_')}
    missing = [f'{m} (no notebook exports it)' for m in sorted(modules - set(exported))]
    built = {nb: page for page, nb in pages.items() if (docs/page).exists()}
    missing += [f'{m} ({nb})' for m, nb in exported.items() if nb not in built]
    if missing: return 'these modules have no docs page: ' + ', '.join(missing)
    extra = sorted(p.relative_to(docs).as_posix() for p in docs.rglob('*.html') if p.relative_to(docs).as_posix() not in pages)
    if extra: return 'pages that no notebook makes: ' + ', '.join(extra)
    broken, ids = [], {}
    for page in docs.rglob('*.html'):
        for href, anchor in re.findall(r'href="([^"#:?]*\.html|)(?:#([^"]*))?"', page.read_text(errors='ignore')):
            target = (page.parent/href).resolve() if href else page
            if not target.exists(): broken.append(f'{page.relative_to(docs)} -> {href}'); continue
            if target not in ids: ids[target] = set(re.findall(r'\bid="([^"]+)"', target.read_text(errors='ignore')))
            if anchor and anchor not in ids[target]: broken.append(f'{page.relative_to(docs)} -> {href}#{anchor}')
    if broken: return 'broken links in the docs: ' + ', '.join(sorted(set(broken))[:20])
    if warnings: return f'smalldocs printed {len(warnings)} warnings (see above): fix them at their cause'
    print(f'docs: {len(pages)} pages in _docs/, {len(exported)} modules documented, no broken link', flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--docs-only', action='store_true')
    args = ap.parse_args()
    steps = [('docs', check_docs)] if args.docs_only else [
        ('sync', check_sync), ('layers', check_layers), ('readme', check_readme), ('tests', check_tests), ('docs', check_docs)]
    errors = []
    for name, step in steps:
        print(f'\n=== {name} ===', flush=True)
        t0 = time.time()
        try: err = step()
        except Exception as e: err = f'{type(e).__name__}: {e}'
        print(f'=== {name}: {"FAILED" if err else "ok"} ({time.time() - t0:.0f} s)', flush=True)
        if err: errors.append(f'[{name}] {err}')
    if errors:
        print('\nmake test FAILED:\n' + '\n'.join(errors), file=sys.stderr)
        sys.exit(1)
    print('\nmake test: all checks passed')

if __name__ == '__main__': main()
