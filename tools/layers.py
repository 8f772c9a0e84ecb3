"""The house rules a reader can check by eye, checked by machine (part of `make test`):

1. every import between package modules points to a module written by a lower-numbered notebook: top-level imports, lazy
   ones inside functions, `import_module` calls, string-named registries and code strings run in subprocesses;
2. no `bench*` function or class is defined outside `bench.py`, and `timing.py` exists;
3. no notebook points outside the repository (`DESIGN.md`, `research/`);
4. a code cell that imports holds nothing but imports (nbdev runs import cells on their own while it builds the docs, so
   code beside an import runs without the cells before it and breaks the build).
"""
import ast, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG, NBS = ROOT/'powerset_align', ROOT/'nbs'

def notebook_numbers():
    "module name -> number of the notebook that writes it (from nbdev's 'File to edit' header)."
    nums = {}
    for p in PKG.glob('*.py'):
        m = re.search(r'File to edit: \.\./nbs/(\d+)_\w+\.ipynb', p.read_text().split('\n', 3)[0] + p.read_text()[:400])
        if m: nums[p.stem] = int(m.group(1))
    return nums

def imported_modules(tree):
    "(line, module) for every package module this module names: imports anywhere, and 'powerset_align.x' strings."
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module: yield node.lineno, node.module.split('.')[0]
            elif node.module and node.module.startswith('powerset_align'):
                parts = node.module.split('.')
                if len(parts) > 1: yield node.lineno, parts[1]
                else: yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('powerset_align.'): yield node.lineno, a.name.split('.')[1]
        elif isinstance(node, ast.Call) and getattr(node.func, 'attr', getattr(node.func, 'id', '')) in ('import_module', '__import__'):
            for a in node.args: yield from _named(a)
        elif isinstance(node, ast.Dict):                       # string-named registries: {'loupe': 'powerset_align.loupe'}
            for v in node.values: yield from _named(v)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and 'import ' in node.value:
            yield from _named(node)                            # code run in a subprocess

def _named(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        for m in re.finditer(r'powerset_align\.([a-z_]+)', node.value): yield node.lineno, m.group(1)

IMPORT = re.compile(r'(from \S+ import|import )')

def mixes_imports(s):
    "True when a cell's top-level lines hold both imports and other code."
    lines = [l for l in s.splitlines() if l.strip() and not l.startswith('#') and not l.startswith((' ', '\t', ')'))]
    n_imp = sum(bool(IMPORT.match(l)) for l in lines)
    return 0 < n_imp < len(lines)

def problems():
    nums, out = notebook_numbers(), []
    for mod, n in sorted(nums.items(), key=lambda kv: kv[1]):
        tree = ast.parse((PKG/f'{mod}.py').read_text())
        for line, other in imported_modules(tree):
            if other in nums and other != mod and nums[other] >= n:
                out.append(f'{mod}.py:{line} ({n:02d}) imports {other} ({nums[other]:02d}), which is not numbered lower')
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.lower().startswith('bench') and mod != 'bench':
                out.append(f'{mod}.py:{node.lineno} defines {node.name}: benchmarks belong in bench.py')
    if not (PKG/'timing.py').exists(): out.append('timing.py is missing')
    for nb in sorted(NBS.rglob('*.ipynb')):
        if '.ipynb_checkpoints' in nb.parts: continue
        for i, c in enumerate(json.loads(nb.read_text())['cells']):
            s = ''.join(c['source'])
            for pat in ('DESIGN.md', 'research/'):
                if pat in s: out.append(f'{nb.relative_to(ROOT)} cell {i} mentions {pat!r}: state the fact in the notebook instead')
            if c['cell_type'] == 'code' and '#| export' not in s and mixes_imports(s):
                out.append(f'{nb.relative_to(ROOT)} cell {i} mixes imports with other code: put the imports in a cell of their own')
    return out

if __name__ == '__main__':
    ps = problems()
    print('\n'.join(ps) if ps else 'layers: every import points down, benchmarks live in bench.py, notebooks stand on their own')
    sys.exit(1 if ps else 0)
