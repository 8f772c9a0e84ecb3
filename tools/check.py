"""`make test`: every check a change must pass, each failing loudly.

1. library and notebooks in sync: `nbdev_export` and `nbdev_clean` change nothing; the house rules of `tools/layers.py`
   hold (imports point down the numbering, benchmarks only in bench.py, notebooks cite nothing outside the repository);
2. `README.md` is what `nbs/index.ipynb` renders to;
3. `nbdev_test` runs every notebook and at least one ran; ends with `N passed, N failed`;
4. the docs build offline (`nbdev_proc_nbs`, `smalldocs render`) and every exported module has a page.
"""
import argparse, hashlib, os, re, shutil, subprocess, sys, time
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

def check_docs():
    shutil.rmtree(ROOT/'_proc', ignore_errors=True)
    if run(BIN/'nbdev_proc_nbs').returncode: return 'nbdev_proc_nbs failed'
    res = run(BIN/'smalldocs', 'render', '-q', '_proc', capture=True)
    sys.stdout.write(res.stdout[-3000:]); sys.stderr.write(res.stderr[-3000:])
    if res.returncode: return 'smalldocs render failed'
    site = ROOT/'_proc'/'_docs'
    shutil.rmtree(ROOT/'_docs', ignore_errors=True); shutil.move(site, ROOT/'_docs')
    docs = ROOT/'_docs'
    # Quarto names a page after its notebook without the number (00_games -> games.html); smalldocs keeps the number
    for page in list(docs.rglob('*.html')):
        plain = page.with_name(re.sub(r'^\d+[a-zA-Z0-9]*_', '', page.name))
        if plain != page: shutil.copy(page, plain)
    exported = {}
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', nb.read_text())
        if m: exported[m.group(1)] = nb
    modules = {p.stem for p in (ROOT/'powerset_align').glob('*.py') if not p.stem.startswith('_')}
    missing = [f'{m} (no notebook exports it)' for m in sorted(modules - set(exported))]
    missing += [f'{m} ({nb.name})' for m, nb in exported.items()
                if not (docs/nb.relative_to(ROOT/'nbs')).with_suffix('.html').exists()]
    if missing: return 'these modules have no docs page: ' + ', '.join(missing)
    broken = []
    for page in docs.rglob('*.html'):
        for href in re.findall(r'href="([^"#:?]+\.html)(?:#[^"]*)?"', page.read_text(errors='ignore')):
            if not (page.parent/href).resolve().exists(): broken.append(f'{page.relative_to(docs)} -> {href}')
    if broken: return 'broken links in the docs: ' + ', '.join(sorted(set(broken))[:20])
    print(f'docs: {len(list(docs.rglob("*.html")))} pages in _docs/, {len(exported)} modules documented, no broken link', flush=True)

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
