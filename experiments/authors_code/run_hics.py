#!/usr/bin/env python
"""Glue for running the HiCS-FL authors' code (CityChan/HiCS-FL @ 3ceca3d) unchanged.

Does only what the stored main.py does (load the JSON config, call trainer.train(args)),
plus:
  * config overrides: method (random|hics), seed (partition seed), epochs, device=cpu, exp
  * torch.manual_seed(--seed) before training (the stored trainer.py seeds torch with 42
    only AFTER training finishes, so model init / data shuffling are otherwise unseeded)
  * torch.set_num_threads(--threads)
  * per-round test accuracy (the code's own Server.global_acc value) appended to a CSV
    by wrapping global_acc; stdout is also tee'd to <csv>.log with per-round wall time
  * optional: stop after --rounds while keeping a longer annealing horizon (--horizon)
  * optional: test-loader num_workers (stored: 2; default here 0, no effect on values)
No file of the authors' code is modified.
"""
import argparse
import csv
import itertools
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))  # this glue: the torchvision shim and import stubs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", default=HERE, help="the folder holding the authors' files (README.md: which, from where)")
    ap.add_argument("--sampler", choices=["random", "hics"], required=True)
    ap.add_argument("--seed", type=int, required=True, help="torch seed; also partition seed unless --partition-seed")
    ap.add_argument("--partition-seed", type=int, default=None,
                    help="config 'seed' (Dirichlet partition + numpy stream); default = --seed; the stored config has 42")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--horizon", type=int, default=None,
                    help="value of config 'epochs' (HiCS annealing horizon T); default = --rounds. "
                         "If > rounds, training stops after --rounds rounds.")
    ap.add_argument("--config", default=None, help="default: <code>/configs/FMNIST/ablation/FMNIST_hics_2_lambda10_gamma4_M5.json")
    ap.add_argument("--out", default=None, help="CSV path; default out/<sampler>_seed<S>.csv")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--test-workers", type=int, default=0, help="num_workers of the global test loader (stored code: 2)")
    a = ap.parse_args()
    code = os.path.abspath(a.code)
    a.config = a.config or os.path.join(code, "configs/FMNIST/ablation/FMNIST_hics_2_lambda10_gamma4_M5.json")

    import torch
    torch.set_num_threads(a.threads)

    out = a.out or os.path.join(code, "out", f"{a.sampler}_seed{a.seed}.csv")
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)

    # The code reads '../data/FMNIST/' and writes './weights/' relative to the cwd.
    workdir = os.path.join(code, "work")
    os.makedirs(os.path.join(workdir, "weights"), exist_ok=True)
    os.chdir(workdir)
    sys.path.insert(0, os.path.join(HERE, "glue"))  # torchvision shim, import stubs
    sys.path.insert(1, code)                         # the authors' code

    logf = open(out + ".log", "w")

    class Tee:
        def __init__(self, *s):
            self.s = s

        def write(self, x):
            for s in self.s:
                s.write(x)

        def flush(self):
            for s in self.s:
                s.flush()

    sys.stdout = Tee(sys.__stdout__, logf)

    with open(a.config) as f:
        args = json.load(f)  # main.py: args = vars(parser args) updated by the JSON
    horizon = a.horizon or a.rounds
    args["method"] = a.sampler
    args["seed"] = a.seed if a.partition_seed is None else a.partition_seed
    args["epochs"] = horizon
    args["device"] = "cpu"  # trainer.train splits on ',' -> ['cpu']
    args["exp"] = f"{a.sampler}_seed{a.seed}"
    args["config"] = a.config

    import trainer
    import server.server_base as sb
    import server.server_hics as sh

    # torch.utils.data.DataLoader draws its per-iterator base seed from the global
    # torch generator whatever num_workers is, so --test-workers does not change results.
    for cls in (sb.Server_base, sh.Server_HiCS):
        orig_init = cls.__init__

        def patched_init(self, args, _orig=orig_init):
            _orig(self, args)
            self.test_loader = torch.utils.data.DataLoader(
                self.test_loader.dataset, batch_size=args["batch_size"], shuffle=False,
                num_workers=a.test_workers)

        cls.__init__ = patched_init

    csvf = open(out, "w", newline="")
    w = csv.writer(csvf)
    w.writerow(["round", "accuracy"])
    csvf.flush()
    t_last = [None]

    for cls in (sb.Server_base, sh.Server_HiCS):
        orig_acc = cls.global_acc

        def patched_acc(self, _orig=orig_acc):
            _orig(self)
            r = len(self.Global_acc)
            w.writerow([r, repr(float(self.Global_acc[-1]))])
            csvf.flush()
            now = time.time()
            print(f"[wrapper] round {r} acc {self.Global_acc[-1]:.6f} round_seconds {now - t_last[0]:.2f}")
            t_last[0] = now

        cls.global_acc = patched_acc

    if a.rounds < horizon:  # keep annealing horizon, stop the loop early
        for mod in (sb, sh):
            real_tqdm = mod.tqdm
            mod.tqdm = lambda it, _t=real_tqdm: _t(itertools.islice(it, a.rounds), total=a.rounds)
    elif a.rounds > horizon:
        raise SystemExit("--rounds must be <= --horizon")

    torch.manual_seed(a.seed)
    t0 = time.time()
    orig_train = {cls: cls.train for cls in (sb.Server_base, sh.Server_HiCS)}
    for cls in orig_train:
        def timed_train(self, _orig=orig_train[cls]):
            t_last[0] = time.time()
            print(f"[wrapper] setup_seconds {t_last[0] - t0:.2f}")
            return _orig(self)
        cls.train = timed_train
    trainer.train(args)
    print(f"[wrapper] total_seconds {time.time() - t0:.2f}")
    csvf.close()
    sys.stdout = sys.__stdout__
    logf.close()


if __name__ == "__main__":
    main()
