"""The GPU check: one script, under ten minutes on one GPU; the same code path on CPU at toy size (`--device cpu --toy`).

1. every objective's training step on the `base` preset under bf16: samples/s and the ratio to CLIP;
2. our CLIP step against a plain open_clip-style step on the same towers, and against open_clip's own ViT-B-16
   when `open_clip` is installed (same batch, bf16);
3. a 1,000-step `small`-preset comparison of CLIP and PowerCLIP through the console's `train_run`, with data-loader workers;
4. the notebooks' `#| gpu` cells (`nbdev_test --flags gpu`).

Writes OUT/gpu_check.json and OUT/gpu_check.md. Run: `python tools/gpu_check.py --out runs/gpu` (a GPU), or
`python tools/gpu_check.py --device cpu --toy --out /tmp/gpu` (the CPU form CI runs).
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _sync(dev):
    import torch
    if dev.type == 'cuda': torch.cuda.synchronize(dev)

def open_clip_step(batch_size, steps, warmup_steps, device, toy):
    "Samples/s of open_clip's own ViT-B-16 CLIP training step (bf16 autocast on CUDA); None when open_clip is missing."
    try: import open_clip
    except ImportError: return None
    import torch
    dev = torch.device(device)
    model = open_clip.create_model('ViT-B-16' if not toy else 'ViT-B-32', pretrained=None).to(dev)
    loss_fn = open_clip.ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    size = model.visual.image_size if isinstance(model.visual.image_size, int) else model.visual.image_size[0]
    x = torch.rand(batch_size, 3, size, size, device=dev); t = torch.randint(1, 49000, (batch_size, 77), device=dev)
    ctx = (lambda: torch.autocast('cuda', dtype=torch.bfloat16)) if dev.type == 'cuda' else __import__('contextlib').nullcontext
    def step():
        opt.zero_grad(set_to_none=True)
        with ctx():
            i, tx, s = model(x, t)[:3]
            loss = loss_fn(i, tx, s)
        loss.backward(); opt.step()
    for _ in range(warmup_steps): step()
    _sync(dev); t0 = time.perf_counter()
    for _ in range(steps): step()
    _sync(dev)
    return batch_size * steps / (time.perf_counter() - t0)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cuda', help='cuda, cuda:1 or cpu')
    ap.add_argument('--toy', action='store_true', help='toy sizes (seconds on CPU): checks the code path, not the figures')
    ap.add_argument('--out', default='runs/gpu_check', help='output folder')
    ap.add_argument('--workers', type=int, default=4, help='data-loader workers of the 1,000-step comparison')
    a = ap.parse_args(argv)
    import torch
    from powerset_align.bench import bench_train_steps, bench_gpu_throughput
    from powerset_align.experiments import train_run
    from powerset_align.methods import valid_methods
    if a.device.startswith('cuda') and not torch.cuda.is_available(): sys.exit('gpu_check: no CUDA device; use --device cpu --toy')
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    toy, dev = a.toy, a.device
    res = dict(device=dev if dev == 'cpu' else torch.cuda.get_device_name(torch.device(dev)), toy=toy, torch=torch.__version__)
    t0 = time.perf_counter()
    # 1. every objective, base preset, bf16
    preset, B = ('tiny', 4) if toy else ('base', 128)
    D = __import__('powerset_align.models', fromlist=['PRESETS']).PRESETS[preset]['embed_dim']
    res['objectives'] = bench_train_steps((preset,), valid_methods(), steps=1 if toy else 10, batch_size=B,
                                          warmup_steps=1 if toy else 3, device=dev,
                                          objective_kwargs={'grain': dict(embed_dim=D), 'loupe': dict(embed_dim=D, unsil_warmup=0)})
    # 2. our CLIP step vs a plain open_clip-style step (same towers), and open_clip's own model
    res['vs_plain'] = bench_gpu_throughput(preset, batch_size=B, steps=1 if toy else 20, warmup_steps=1 if toy else 5,
                                           attn_implementation='eager' if toy else 'sdpa', device=dev)
    res['open_clip_samples_per_s'] = open_clip_step(2 if toy else B, 1 if toy else 20, 1 if toy else 5, dev, toy)
    # 3. the small preset through the console's training path, with loader workers
    runs = {}
    with tempfile.TemporaryDirectory() as d:
        for m in ('clip', 'powerclip'):
            t1 = time.perf_counter()
            _, _, hist = train_run(m, 'tiny' if toy else 'small', 'scenes', 2 if toy else 1000, 4 if toy else 128, 1e-3, 0,
                                   f'{d}/{m}', False, device=dev, num_workers=0 if toy else a.workers)
            secs = time.perf_counter() - t1
            runs[m] = dict(seconds=secs, final_loss=hist[-1]['loss'], steps=hist[-1]['step'], samples_per_s=hist[-1]['step'] * (4 if toy else 128) / secs)
    res['small_1000_steps'] = runs
    # 4. the #| gpu cells
    if not toy:
        nbs = [str(p) for p in sorted((ROOT / 'nbs').glob('*.ipynb')) if '#| gpu' in p.read_text()]
        rcs = {}
        for nb in nbs:    # each notebook whole, with its `#| gpu` cells switched on
            r = subprocess.run([str(Path(sys.executable).parent / 'nbdev_test'), '--flags', 'gpu', '--path', nb], cwd=ROOT,
                               capture_output=True, text=True)
            rcs[Path(nb).name] = dict(returncode=r.returncode, tail=(r.stdout + r.stderr)[-1500:])
        res['gpu_cells'] = rcs
    res['seconds'] = time.perf_counter() - t0
    (out / 'gpu_check.json').write_text(json.dumps(res, indent=1, default=str))
    L = [f"# GPU check: {res['device']}{' (toy sizes)' if toy else ''}", '', '| objective | ms/step | samples/s | ratio to CLIP |', '|---|---|---|---|']
    L += [f"| {r['method']} | {r['ms_per_step']:.1f} | {r['samples_per_s']:.1f} | {r['ratio_vs_clip']:.2f} |" for r in res['objectives']]
    v = res['vs_plain']
    L += ['', f"our CLIP step {v['samples_per_s_ours']:.1f} samples/s, plain open_clip-style step {v['samples_per_s_plain']:.1f} "
          f"(ratio {v['ratio']:.2f}); open_clip's own model: "
          + (f"{res['open_clip_samples_per_s']:.1f} samples/s" if res['open_clip_samples_per_s'] else 'open_clip not installed')]
    L += [''] + [f"- {m}, {'tiny' if toy else 'small'} preset through `train_run` ({0 if toy else a.workers} workers): {r['steps']} steps in "
                 f"{r['seconds']:.1f} s ({r['samples_per_s']:.0f} samples/s), final loss {r['final_loss']:.3f}" for m, r in runs.items()]
    if 'gpu_cells' in res: L += [''] + [f"- `#| gpu` cells of {nb}: exit {r['returncode']}" for nb, r in res['gpu_cells'].items()]
    (out / 'gpu_check.md').write_text('\n'.join(L) + '\n')
    print('\n'.join(L))
    return res

if __name__ == '__main__': main()
