"""`make browser-test`: the widgets and the docs site, checked in a real browser (not part of `make test`).

1. installs what it needs from the package registries only: Debian's `chromium` (apt-get) and `playwright` (pip),
   which drives that Chromium through `executable_path`; no browser is downloaded;
2. starts JupyterLab on 127.0.0.1 with a random token, opens every notebook that shows a widget (its `#| slow`,
   `#| notest` and `#| gpu` cells left out, as `nbdev_test` does), runs it, and for each widget checks that its
   controls and its figure render, that moving each control redraws the figure (the figure's image bytes change),
   and that the browser console shows no error; one screenshot per widget goes to `runs/browser-test/widgets/`;
3. opens every page of the docs (`_docs/`, built by `make test` or `make docs`; built here when missing) in the same
   browser: no console error, no broken image, no dead link (pages and their anchors);
4. stops every process it started (JupyterLab and its kernels, the browser) and prints `N passed, N failed`.
"""
import argparse, contextlib, functools, http.server, json, os, re, secrets, shutil, signal, socket, subprocess
import sys, tempfile, threading, time, urllib.parse, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync']
WIDGET_CALL = re.compile(r'(?<!def )\b(?:explore|browse)_\w+\(')
MARK_VIEWS = """() => { let n = 0;  // the outputs that hold a widget view, not those nested in another widget
    for (const o of document.querySelectorAll('.jp-Cell .jp-OutputArea-output'))
        if (o.querySelector(':scope > .jupyter-widgets') && !o.parentElement.closest('.jupyter-widgets')) o.setAttribute('data-widget-view', n++);
    return n }"""
CONTROLS = {  # what a person can move in an ipywidgets 8 view, and how this test moves it
    'slider': '.widget-slider .noUi-handle', 'dropdown': '.widget-dropdown select', 'text': '.widget-text input[type=text]',
    'number': '.widget-text input[type=number]', 'checkbox': '.widget-checkbox input[type=checkbox]',
    'toggle': '.widget-toggle-buttons button'}

def say(*a): print(*a, flush=True)

# ------------------------------------------------------------------ set-up: registries only
def ensure_chromium():
    if CHROMIUM.exists(): return
    if shutil.which('apt-get') is None or os.geteuid() != 0:
        sys.exit(f"error: {CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`) and rerun")
    say('$ apt-get install chromium')
    env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
    subprocess.run(['apt-get', 'update', '-qq'], check=True, env=env)
    subprocess.run(['apt-get', 'install', '-y', '-qq', 'chromium'], check=True, env=env)

def ensure_playwright():
    try: import playwright  # noqa: F401
    except ImportError:
        say('$ pip install playwright')
        env = {**os.environ, 'PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD': '1'}
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', 'playwright'], check=True, env=env)

# ------------------------------------------------------------------ the notebooks to open
def directives(src):
    "The `#| ...` directives at the top of a cell, as {name: value}"
    out = {}
    for line in src.splitlines():
        m = re.match(r'\s*#\|\s*([\w-]+)\s*:?\s*(.*)', line)
        if not m:
            if line.strip(): break
            continue
        out[m.group(1)] = m.group(2).strip()
    return out

def skip_flags():
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    return set(cfg['DEFAULT'].get('tst_flags', '').split())

def widget_notebooks():
    "{notebook: its cells as `nbdev_test` runs them, up to the last one that shows a widget}"
    flags, out = skip_flags(), {}
    for nb in sorted((ROOT/'nbs').rglob('*.ipynb')):
        if any(p.startswith(('.', '_')) for p in nb.relative_to(ROOT/'nbs').parts): continue
        cells = json.loads(nb.read_text())['cells']
        keep = []
        for c in cells:
            if c['cell_type'] != 'code': continue
            src = ''.join(c['source']); d = directives(src)
            if d.keys() & flags or d.get('eval', '').lower() == 'false': continue
            keep.append(src)
        last = max((i for i, s in enumerate(keep) if WIDGET_CALL.search(s)), default=None)
        if last is not None: out[nb] = keep[:last + 1]
    return out

def write_copy(nb, cells, folder):
    "A notebook of `cells` in `folder` whose first cell moves the kernel into the notebook's own folder"
    first = f"import os; os.chdir({str(nb.parent)!r})"
    nbj = {'cells': [{'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {}, 'outputs': [],
                      'source': s} for i, s in enumerate([first] + cells)],
           'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}},
           'nbformat': 4, 'nbformat_minor': 5}
    dest = folder/(str(nb.relative_to(ROOT/'nbs').with_suffix('')).replace('/', '__') + '.ipynb')
    dest.write_text(json.dumps(nbj, indent=1))
    return dest

# ------------------------------------------------------------------ JupyterLab
def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class Lab:
    "JupyterLab on 127.0.0.1 with a token, in a fresh config, settings and workspace folder; stopped by `stop()`"
    def __init__(self, root, home, log):
        self.port, self.token, self.root, self.runtime = free_port(), secrets.token_hex(24), root, home/'runtime'
        self.url = f'http://127.0.0.1:{self.port}'
        env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
               'JUPYTER_CONFIG_DIR': str(home/'config'), 'JUPYTER_RUNTIME_DIR': str(home/'runtime'),
               'JUPYTERLAB_SETTINGS_DIR': str(home/'settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(home/'workspaces'),
               'IPYTHONDIR': str(home/'ipython'), 'MPLBACKEND': 'module://matplotlib_inline.backend_inline',
               'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
        tracker = home/'settings'/'@jupyterlab'/'notebook-extension'/'tracker.jupyterlab-settings'
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({'windowingMode': 'none'}))  # every cell in the page, not only those in view
        news = home/'settings'/'@jupyterlab'/'apputils-extension'/'notification.jupyterlab-settings'
        news.parent.mkdir(parents=True, exist_ok=True); news.write_text(json.dumps({'fetchNews': 'false'}))
        self.log = open(log, 'w')
        cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', f'--ServerApp.ip=127.0.0.1', f'--ServerApp.port={self.port}',
               '--ServerApp.port_retries=0', f'--IdentityProvider.token={self.token}', f'--ServerApp.root_dir={root}',
               '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=None', '--LabApp.extension_manager=readonly',
               '--ServerApp.terminals_enabled=False', *(['--allow-root'] if os.geteuid() == 0 else []),
               '--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate']
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.time()
        while True:
            if self.proc.poll() is not None: raise RuntimeError(f'JupyterLab exited ({self.proc.returncode}): see {self.log.name}')
            with contextlib.suppress(OSError):
                if self.api('GET', '/api/status') is not None: break
            if time.time() - t0 > 120: raise RuntimeError(f'JupyterLab did not answer within 120 s: see {self.log.name}')
            time.sleep(0.5)

    def api(self, method, path):
        req = urllib.request.Request(self.url + path, method=method, headers={'Authorization': f'token {self.token}'})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            return json.loads(body) if body else {}

    def shutdown_kernels(self):
        for s in self.api('GET', '/api/sessions'): self.api('DELETE', f"/api/sessions/{s['id']}")

    def children(self):
        "Pids of the processes the server started (its kernels, which run in sessions of their own)"
        out = []
        for stat in Path('/proc').glob('[0-9]*/stat'):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(')', 1)[1].split()[1]) == self.proc.pid: out.append(int(stat.parent.name))
        return out

    def stop(self):
        if self.proc.poll() is None:
            kids = self.children()
            with contextlib.suppress(OSError): self.api('POST', '/api/shutdown')
            try: self.proc.wait(20)
            except subprocess.TimeoutExpired:
                for pid in [self.proc.pid, *kids]:
                    with contextlib.suppress(ProcessLookupError): os.kill(pid, signal.SIGTERM)
                try: self.proc.wait(10)
                except subprocess.TimeoutExpired: self.proc.kill()
            for pid in kids:  # a kernel the shutdown missed: still the one started here (its connection file is in our runtime folder)
                with contextlib.suppress(OSError):
                    if str(self.runtime) in Path(f'/proc/{pid}/cmdline').read_text(): os.kill(pid, signal.SIGKILL)
        self.log.close()

# ------------------------------------------------------------------ the browser
class Console:
    """Errors the page reports: console errors, uncaught exceptions, failed requests. A request to another host than
    127.0.0.1 is refused (the test runs offline): it is listed in `external`, not counted as an error"""
    def __init__(self, page):
        self.errors, self.external = [], set()
        page.on('console', self.console)
        page.on('pageerror', lambda e: self.errors.append(f'exception: {e}'))
        page.on('requestfailed', lambda r: None if external(r.url) else self.errors.append(f'request failed: {r.url} ({r.failure})'))
        page.on('response', lambda r: r.status >= 400 and self.errors.append(f'HTTP {r.status}: {r.url}'))

    def console(self, m):
        if m.type != 'error': return
        url = (m.location or {}).get('url', '')
        if external(url) and m.text.startswith('Failed to load resource'): self.external.add(url); return
        self.errors.append(f'console: {m.text}')

    def take(self):
        e, self.errors = self.errors, []
        return e

def external(url):
    u = urllib.parse.urlsplit(url)
    return u.scheme in ('http', 'https') and u.hostname not in ('127.0.0.1', 'localhost')

def local_only(route):
    "Requests stay on this machine: one to another host is refused"
    return route.abort() if external(route.request.url) else route.continue_()

def figure(view):
    "The bytes of the figures a widget view shows now (its images' sources)"
    return view.evaluate("v => [...v.querySelectorAll('img')].map(i => i.src).join('|')")

def wait_change(view, before, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        now = figure(view)
        if now and now != before:
            time.sleep(0.3)  # let a redraw that streams several outputs finish
            return True
        time.sleep(0.25)
    return False

def move(page, kind, el):
    "Move one control the way a person would; returns what was done"
    if kind == 'slider':
        el.focus(); el.press('ArrowRight'); return 'ArrowRight on the slider'
    if kind == 'dropdown':
        opts = el.evaluate('s => [...s.options].map(o => o.value)'); cur = el.input_value()
        new = next(o for o in opts if o != cur); el.select_option(new); return f'picked {new!r}'
    if kind in ('text', 'number'):
        cur = el.input_value()
        add = '1' if kind == 'number' else (', 1' if re.fullmatch(r'[\d.,;\s]+', cur) else ' and a blue square')
        el.click(); el.press('End'); el.type(add); el.press('Enter'); return f'typed {add!r}'
    el.click(); return 'clicked'

def check_widget(page, view, shot):
    "Controls and figure render, each control redraws the figure; returns (row, problems)"
    problems, row = [], {}
    view.scroll_into_view_if_needed()
    controls = [(k, el) for k, sel in CONTROLS.items() for el in view.query_selector_all(sel) if el.is_visible()]
    imgs = view.evaluate("v => [...v.querySelectorAll('img')].map(i => [i.complete, i.naturalWidth])")
    row['controls'] = len(controls); row['figures'] = len(imgs)
    if not controls: problems.append('no control rendered')
    if not imgs or not all(c and w > 0 for c, w in imgs): problems.append(f'figure not rendered (images: {imgs})')
    view.screenshot(path=str(shot))
    moved = []
    for kind, el in controls:
        before = figure(view); how = move(page, kind, el)
        ok = wait_change(view, before)
        moved.append(ok)
        if not ok: problems.append(f'{kind} control ({how}): the figure did not change')
    row['responds'] = f'{sum(moved)}/{len(moved)}'
    return row, problems

def run_notebook(page, lab, copy, timeout):
    "Open a notebook in JupyterLab (in a workspace of its own, so no other notebook is reopened), run all its cells; returns the problems"
    page.goto(f'{lab.url}/lab/workspaces/{copy.stem}/tree/{copy.name}?token={lab.token}')
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                           "window.jupyterapp.shell.currentWidget.sessionContext && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.connectionStatus === 'connected'",
                           timeout=120_000)
    ok = page.evaluate(f"""() => Promise.race([
        window.jupyterapp.commands.execute('notebook:run-all-cells'),
        new Promise(r => setTimeout(() => r('timeout'), {timeout * 1000}))])""")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=timeout * 1000)
    errs = page.evaluate("""() => { const m = window.jupyterapp.shell.currentWidget.content.model, out = [];
        for (let i = 0; i < m.cells.length; i++) { const c = m.cells.get(i);
            if (c.type === 'code') for (const o of c.outputs.toJSON()) if (o.output_type === 'error') out.push(`cell ${i}: ${o.ename}: ${o.evalue}`.slice(0, 400)) }
        return out }""")
    problems = [f'a cell failed: {e}' for e in errs]
    if ok == 'timeout': problems.append(f'the notebook did not finish within {timeout} s')
    elif ok is False and not problems: problems.append('run-all-cells reported a failure')
    return problems

# ------------------------------------------------------------------ the docs
def serve(folder):
    handler = functools.partial(type('Quiet', (http.server.SimpleHTTPRequestHandler,), {'log_message': lambda *a: None}),
                                directory=str(folder))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv

def check_docs(context, docs, out):
    srv = serve(docs); base = f'http://127.0.0.1:{srv.server_address[1]}/'
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob('*.html'))
    ids = {}
    def anchors(rel):
        if rel not in ids: ids[rel] = set(re.findall(r'\bid="([^"]+)"', (docs/rel).read_text(errors='ignore')))
        return ids[rel]
    failures, external = {}, set()
    page = context.new_page(); con = Console(page)
    try:
        for rel in pages:
            page.goto(base + rel, wait_until='load')
            page.wait_for_timeout(150)
            problems = con.take()
            broken = page.evaluate("() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 120))")
            problems += [f'broken image: {b}' for b in broken]
            for href in set(page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")):
                u = urllib.parse.urlsplit(href)
                if u.scheme not in ('http', 'https'): continue
                if f'{u.scheme}://{u.netloc}/' != base: external.add(f'{u.scheme}://{u.netloc}'); continue
                target = urllib.parse.unquote(u.path.lstrip('/')) or 'index.html'
                if target.endswith('/'): target += 'index.html'
                if not (docs/target).is_file(): problems.append(f'dead link: {href[len(base):]}')
                elif u.fragment and target.endswith('.html') and urllib.parse.unquote(u.fragment) not in anchors(target):
                    problems.append(f'dead anchor: {href[len(base):]}')
            if rel == 'index.html': page.screenshot(path=str(out/'docs-index.png'), full_page=False)
            if problems: failures[rel] = sorted(set(problems))
    finally:
        page.close(); srv.shutdown(); srv.server_close()
    return pages, failures, sorted(external), sorted({urllib.parse.urlsplit(u).netloc for u in con.external})

# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'runs'/'browser-test'), help='screenshots and report go here')
    ap.add_argument('--only', nargs='*', help='notebook names (e.g. 01_shapley) to open; default: every one with a widget')
    ap.add_argument('--no-docs', action='store_true', help='skip the docs pages')
    ap.add_argument('--docs-only', action='store_true', help='only the docs pages')
    ap.add_argument('--timeout', type=int, default=600, help='seconds for one notebook to run')
    args = ap.parse_args()
    t_start = time.time()
    ensure_chromium(); ensure_playwright()
    from playwright.sync_api import sync_playwright
    out = Path(args.out); shutil.rmtree(out, ignore_errors=True); (out/'widgets').mkdir(parents=True)
    docs = ROOT/'_docs'
    if not args.no_docs and not (docs/'index.html').exists():
        subprocess.run([sys.executable, str(ROOT/'tools'/'check.py'), '--docs-only'], check=True)
    nbs = widget_notebooks()
    if args.only: nbs = {nb: c for nb, c in nbs.items() if nb.stem in args.only or str(nb.relative_to(ROOT/'nbs')) in args.only}
    if args.docs_only: nbs = {}
    elif not nbs: sys.exit('error: no notebook shows a widget (or --only matched none)')
    tmp = Path(tempfile.mkdtemp(prefix='browser-test-'))
    (tmp/'nbs').mkdir(); (tmp/'home').mkdir()
    copies = {nb: write_copy(nb, cells, tmp/'nbs') for nb, cells in nbs.items()}
    rows, failed, lab = [], [], None
    def stop(*_): raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    try:
        if nbs:
            say(f'starting JupyterLab ({len(nbs)} notebooks show a widget)')
            lab = Lab(tmp/'nbs', tmp/'home', out/'jupyterlab.log')
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(str(tmp/'profile'), executable_path=str(CHROMIUM), headless=True,
                                                           args=CHROMIUM_FLAGS, viewport={'width': 1400, 'height': 1000})
            context.route('**/*', local_only)
            try:
                for nb, copy in copies.items():
                    name = str(nb.relative_to(ROOT/'nbs'))
                    t0 = time.time(); page = context.new_page(); con = Console(page)
                    problems = run_notebook(page, lab, copy, args.timeout)
                    page.evaluate(MARK_VIEWS); views = page.query_selector_all('[data-widget-view]')
                    if not views: problems.append('no widget rendered')
                    if problems: page.screenshot(path=str(out/f'{copy.stem}-page.png'), full_page=True)
                    for k, view in enumerate(views):
                        shot = out/'widgets'/f'{copy.stem}-{k}.png'
                        row, wp = check_widget(page, view, shot)
                        errs = con.take()
                        rows.append(dict(notebook=name, widget=k, **row, console_errors=len(errs), screenshot=str(shot.relative_to(out))))
                        problems += wp + errs
                    problems += con.take()
                    page.close(); lab.shutdown_kernels()
                    say(f"{'FAIL' if problems else 'ok  '} {name}: {len(views)} widget(s), {time.time() - t0:.0f} s")
                    for pr in problems: say(f'       {pr}')
                    if problems: failed.append(name)
                doc_pages, doc_fail, external, refused = ([], {}, [], []) if args.no_docs else check_docs(context, docs, out)
            finally:
                context.close()
    finally:
        if lab: lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for rel, pr in doc_fail.items():
        say(f'FAIL docs/{rel}'); [say(f'       {x}') for x in pr[:20]]
    wall = time.time() - t_start
    lines = ['| notebook | widget | controls | figures | responds | console errors |', '|---|---|---|---|---|---|']
    lines += [f"| {r['notebook']} | {r['widget']} | {r['controls']} | {r['figures']} | {r['responds']} | {r['console_errors']} |" for r in rows]
    report = '\n'.join(lines) + (f"\n\ndocs: {len(doc_pages)} pages, {len(doc_fail)} with problems; external links not followed: "
                                 f"{', '.join(external) or 'none'}; resources refused offline (loaded from other hosts): {', '.join(refused) or 'none'}"
                                 f"\nwall time: {wall:.0f} s\n")
    (out/'report.md').write_text(report)
    say('\n' + report)
    n_pass = len(nbs) - len(failed) + len(doc_pages) - len(doc_fail)
    say(f'{n_pass} passed, {len(failed) + len(doc_fail)} failed')
    sys.exit(1 if failed or doc_fail else 0)

if __name__ == '__main__': main()
