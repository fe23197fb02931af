"""Run every benchmark script in this folder and print their tables (`make bench`).

Each script is also runnable alone; see its docstring for options. Heavy: trains the model zoos that are not
cached yet (MNIST: seconds per model; CIFAR-10 / GTSRB: minutes per model on 2 CPU cores).
"""
import subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).parent
ORDER = ['attacks.py', 'neural_cleanse.py', 'smoothinv.py', 'mitigation.py']

def main():
    scripts = [HERE / s for s in ORDER if (HERE / s).exists()]
    scripts += sorted(p for p in HERE.glob('*.py') if p.name not in ORDER + ['run_all.py'])
    failed = []
    for s in scripts:
        print(f"\n=== {s.name} ===", flush=True)
        t = time.time()
        r = subprocess.run([sys.executable, str(s)])
        print(f"=== {s.name}: exit {r.returncode}, {time.time() - t:.0f} s ===", flush=True)
        if r.returncode: failed.append(s.name)
    if failed: sys.exit(f"failed: {', '.join(failed)}")

if __name__ == '__main__': main()
