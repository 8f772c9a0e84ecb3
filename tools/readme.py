"""Render `README.md` from `nbs/index.ipynb` without Quarto (`nbdev_readme` needs it).

Run `nbdev_proc_nbs --file_glob index.ipynb` first (this script does it when called directly); the processed
notebook has hidden cells removed and its title turned into front matter."""
import functools, json, os, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

@functools.lru_cache(maxsize=None)
def _quarto_stub():
    "A directory holding a `quarto` that refuses to run: nbdev 2 would otherwise try to install Quarto (and `pip install -e .`)"
    d = Path(tempfile.mkdtemp(prefix='no-quarto-'))
    (d/'quarto').write_text('#!/bin/sh\necho "quarto is not available offline: build the site in CI (.github/workflows/deploy.yaml)" >&2\nexit 1\n')
    (d/'quarto').chmod(0o755)
    return d

def offline_env():
    "Environment for nbdev commands: the venv first on PATH and a `quarto` stub, so nothing tries to install Quarto"
    bindir = Path(sys.executable).parent
    return {**os.environ, 'PATH': f"{_quarto_stub()}{os.pathsep}{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}

def _front_matter(src):
    import yaml
    return yaml.safe_load(src.strip().strip('-')) or {}

def _text(x): return ''.join(x) if isinstance(x, list) else x

def _output_md(out):
    if out.get('output_type') == 'stream': return '```\n' + _text(out['text']).rstrip() + '\n```'
    data = out.get('data', {})
    if 'text/markdown' in data: return _text(data['text/markdown']).strip()
    if 'text/plain' in data and not any(k.startswith('image/') or k.startswith('application/vnd.jupyter.widget')
                                        for k in data):
        return '```\n' + _text(data['text/plain']).rstrip() + '\n```'
    return None

def render_readme(proc_nb):
    "Markdown for the processed notebook `proc_nb`: title, description, cells and their text outputs"
    nb = json.loads(Path(proc_nb).read_text())
    parts = []
    for cell in nb['cells']:
        src = _text(cell['source'])
        if cell['cell_type'] == 'raw' and src.lstrip().startswith('---'):
            meta = _front_matter(src)
            parts.append(f"# {meta.get('title', '')}")
            if meta.get('description'): parts.append(f"> {meta['description']}")
        elif cell['cell_type'] == 'markdown': parts.append(src.strip())
        elif cell['cell_type'] == 'code' and src.strip():
            parts.append('```python\n' + src.strip() + '\n```')
            parts += [md for md in map(_output_md, cell.get('outputs', [])) if md]
    return '\n\n'.join(p for p in parts if p) + '\n'

if __name__ == '__main__':
    bindir = Path(sys.executable).parent
    subprocess.run([str(bindir/'nbdev_proc_nbs'), '--file_glob', 'index.ipynb'], cwd=ROOT, check=True, env=offline_env())
    (ROOT/'README.md').write_text(render_readme(ROOT/'_proc'/'index.ipynb'))
    print('wrote README.md')
