"""Does SmolLM2-135M-Instruct learn a repository's rule from a queue that holds corrections? (issue #26)

The queue: SmolLM2's greedy attempts at `--n` train tasks of the canonical realistic repository
(`bench.realrepo`, `realrepo-0-0`), checked by the repository's linter and unit tests; each failing attempt also
carries the human's correction after accepting it (an `edit` with the reference body, as the language server
records a settled rewrite), and every finding the repository's checks as a rerunnable recipe
(`bench/realrepo/recheck.py`). The records go through the real queue (`redline import` into a fresh repository's
ledger), come back with `examples_from_store`, and train with the trainer's defaults (`train_config_for` on a
repository without a `redline.toml`) through `redline.trainer.api.train`: the hindsight probe first (its line is
printed as `redline train` prints it), then the teacher's rewrites, then the steps.

Measured: on the 48 held-out tasks (new functions, families never trained on, every rule represented), the share
of greedy attempts that follow the repository's rules (no RL1xx finding), base vs adapter, paired: each side's
Wilson 95 % interval, the difference's paired-bootstrap 95 % interval and an exact McNemar test. Unit tests and
"every check passes" are shown beside it.

    nice -n 10 python bench/smollm2_corrections.py                 # 32 records, all 48 held-out tasks
    nice -n 10 python bench/smollm2_corrections.py --n 64 --unchanged

Completions are cached in `--out`/generations.jsonl (by model or adapter, token cap and context: the same cache
and key as `python -m bench.realrepo.probe`), so a rerun generates only what changed; the report is written to
`--out`/corrections.json. The model comes from the set-up cache (`python -m bench.smollm2 --build`); nothing is
downloaded here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.realrepo.checker import CheckResult, check  # noqa: E402
from bench.realrepo.evaluate import max_new_tokens  # noqa: E402
from bench.realrepo.records import model_ref, record_of  # noqa: E402
from bench.realrepo.repos import Repo, make_repo  # noqa: E402
from bench.realrepo.tasks import Task  # noqa: E402

OUT = ROOT / "bench" / "out" / "realrepo"


class Completions:
    """Greedy completions of the base model or the base with an adapter, cached on disk by (model key, token cap,
    context); the base's key is the source wheel's sha256, as `bench.realrepo.probe.Generator` keys it."""

    def __init__(self, model_path: Path, cache: Path, batch_size: int = 16) -> None:
        self.model_path, self.cache_path, self.batch_size = model_path, cache, batch_size
        record = model_path / "smollm2.json"
        self.base_key = (str(json.loads(record.read_text())["source"]["sha256"]) if record.exists()
                         else str(model_path))
        self.cache: dict[str, str] = {}
        if cache.exists():
            for line in cache.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self.cache[row["key"]] = row["completion"]
        self.generated = 0

    def model_key(self, adapter: Path | None) -> str:
        if adapter is None:
            return self.base_key
        digest = hashlib.sha256((adapter / "adapter_model.safetensors").read_bytes()).hexdigest()
        return f"{self.base_key}+{digest}"

    def __call__(self, adapter: Path | None, contexts: Sequence[str], cap: int) -> list[str]:
        from bench.realrepo.generate import generate, load

        mkey = self.model_key(adapter)
        keys = [hashlib.sha256(f"{mkey}\0{cap}\0{c}".encode()).hexdigest() for c in contexts]
        todo = sorted({k: c for k, c in zip(keys, contexts, strict=True) if k not in self.cache}.items())
        if todo:
            model, tokenizer = load(self.model_path, adapter)
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start:start + self.batch_size]
                outs = generate(model, tokenizer, [c for _, c in chunk], max_new_tokens=cap,
                                batch_size=self.batch_size)
                with self.cache_path.open("a", encoding="utf-8") as fh:
                    for (k, _), (text, _ids) in zip(chunk, outs, strict=True):
                        self.cache[k] = text
                        fh.write(json.dumps({"key": k, "completion": text}) + "\n")
                self.generated += len(chunk)
                print(f"  generated {self.generated} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
        return [self.cache[k] for k in keys]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap(base: Sequence[bool], other: Sequence[bool], *, draws: int = 10000, seed: int = 0
                     ) -> tuple[float, float]:
    """95 % interval of mean(other) - mean(base) over tasks resampled with replacement (pairs kept together)."""
    rng = random.Random(seed)
    n = len(base)
    diffs = [int(o) - int(b) for b, o in zip(base, other, strict=True)]
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(draws))
    return (means[int(0.025 * draws)], means[int(0.975 * draws) - 1])


def mcnemar_p(base: Sequence[bool], other: Sequence[bool]) -> tuple[int, int, float]:
    """(tasks only the adapter gets right, tasks only the base gets right, exact two-sided McNemar p)."""
    gained = sum(o and not b for b, o in zip(base, other, strict=True))
    lost = sum(b and not o for b, o in zip(base, other, strict=True))
    m = gained + lost
    if m == 0:
        return gained, lost, 1.0
    tail = sum(math.comb(m, i) for i in range(min(gained, lost) + 1)) / 2 ** m
    return gained, lost, min(1.0, 2 * tail)


def redline(cwd: Path, home: Path, *args: str) -> str:
    env = {**os.environ, "REDLINE_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "redline", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, check=False)
    if proc.returncode:
        raise SystemExit(f"`redline {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def scores(repo: Repo, tasks: Sequence[Task], codes: Sequence[str]) -> list[CheckResult]:
    return [check(repo, t, c) for t, c in zip(tasks, codes, strict=True)]


def summary(name: str, results: Sequence[CheckResult]) -> dict[str, Any]:
    n = len(results)
    rules = sum(not r.lint_codes for r in results)
    return {"arm": name, "n": n, "rules_followed": rules, "rules_followed_ci": wilson(rules, n),
            "tests_pass": sum(r.tests_passed for r in results), "all_pass": sum(r.passed for r in results)}


def train_on_queue(model: Path, records: list, work: Path) -> tuple[Path, dict[str, Any]]:
    """`redline import` the records into a fresh repository's ledger, read them back as the trainer does, train with
    the defaults; the adapter's directory and what the run said (the probe's line included)."""
    from bench.world.records import write_jsonl
    from redline.config import load_config
    from redline.queue import open_store
    from redline.trainer.api import train
    from redline.trainer.data import examples_from_store
    from redline.trainer.run import train_config_for

    sample, home = work / "repo", work / "home"
    sample.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=sample, check=True)
    write_jsonl(records, work / "records.jsonl")
    imported = redline(sample, home, "import", str(work / "records.jsonl")).strip()
    print(imported, flush=True)
    os.environ["REDLINE_HOME"] = str(home)
    config = load_config(sample)
    tcfg = train_config_for(config)
    store = open_store(config)
    try:
        examples = examples_from_store(store, split="train", include_passed=tcfg.use_passed_anchors)
    finally:
        store.close()
    probe_lines: list[str] = []

    def heard(report: Any) -> None:
        probe_lines.append(report.line())
        print(report.line(), flush=True)

    started = time.time()
    result = train(model, examples, work / "adapter", tcfg, progress=False, on_probe=heard)
    said = {"imported": imported, "examples": len(examples), "probe": probe_lines[0] if probe_lines else None,
            "steps": result.steps, "pairs": result.pairs, "train_seconds": round(time.time() - started),
            "hindsight_strategy": result.metrics.get("hindsight_strategy"), "settings": tcfg.to_dict()}
    return result.out_dir, said


def main(argv: list[str] | None = None) -> int:
    import torch

    from bench.smollm2 import ModelMissing, build_or_load

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=32, help="train records in the queue (of the repo's 101 tasks)")
    parser.add_argument("--seed", type=int, default=0, help="which train tasks are drawn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--unchanged", action="store_true", help="also measure the 34 rule-free tasks (retention)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--adapter", type=Path, default=None, help="evaluate this adapter instead of training one")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        model = build_or_load()
    except ModelMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    repo = make_repo(0, 0)
    gen = Completions(model, args.out / "generations.jsonl")
    from transformers import AutoTokenizer

    every = [*repo.train_tasks, *repo.heldout_tasks, *repo.unchanged_tasks]
    cap = max_new_tokens(AutoTokenizer.from_pretrained(model), every)
    tasks = random.Random(f"{repo.id}:{args.seed}").sample(repo.train_tasks, args.n)
    first = gen(None, [t.prompt for t in tasks], cap)
    ref = model_ref(model)
    records = [record_of(repo, t, code, model=ref, corrections=True,
                         sampling={"temperature": 0.0, "max_new_tokens": cap})
               for t, code in zip(tasks, first, strict=True)]
    failed = sum(not any(f.kind == "accept" for f in fb) for _, fb in records)
    print(f"{repo.id}: {len(records)} records, {failed} failing (each with its correction), "
          f"{len(records) - failed} accepted", flush=True)
    report: dict[str, Any] = {"repo": repo.id, "records": len(records), "failing_with_correction": failed,
                              "max_new_tokens": cap, "seed": args.seed}
    if args.adapter is None:
        from redline.trainer.errors import NothingToLearn

        work = Path(tempfile.mkdtemp(prefix="redline-corrections-"))
        try:
            adapter, said = train_on_queue(model, records, work)
        except NothingToLearn as exc:
            # Redline refuses before any step: the result is the refusal (and the base figure it had to beat)
            report["training"] = {"refused": str(exc)}
            held = repo.heldout_tasks
            report["heldout"] = {"base": summary("base", scores(repo, held, gen(None, [t.prompt for t in held],
                                                                                  cap)))}
            (args.out / "corrections.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
            b = report["heldout"]["base"]
            print(f"Redline did not train: {exc}\n  held-out base (N = {b['n']}): rules followed "
                  f"{b['rules_followed']}/{b['n']}; no adapter to compare")
            return 2
        report["training"] = said
    else:
        adapter = args.adapter
    report["adapter"] = str(adapter)
    held = repo.heldout_tasks
    base_held = scores(repo, held, gen(None, [t.prompt for t in held], cap))
    ad_held = scores(repo, held, gen(adapter, [t.prompt for t in held], cap))
    b = [not r.lint_codes for r in base_held]
    a = [not r.lint_codes for r in ad_held]
    gained, lost, p = mcnemar_p(b, a)
    report["heldout"] = {"base": summary("base", base_held), "adapter": summary("adapter", ad_held),
                         "difference": (sum(a) - sum(b)) / len(held), "difference_ci": paired_bootstrap(b, a),
                         "gained": gained, "lost": lost, "mcnemar_p": p,
                         "per_task": {t.id: {"base": x, "adapter": y} for t, x, y in zip(held, b, a, strict=True)}}
    if args.unchanged:
        un = repo.unchanged_tasks
        report["unchanged"] = {"base": summary("base", scores(repo, un, gen(None, [t.prompt for t in un], cap))),
                               "adapter": summary("adapter",
                                                  scores(repo, un, gen(adapter, [t.prompt for t in un], cap)))}
    (args.out / "corrections.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(table(report))
    return 0


def table(report: dict[str, Any]) -> str:
    h = report["heldout"]
    lines = [f"{report['repo']}: {report['records']} queued records ({report['failing_with_correction']} with a "
             f"correction), trainer defaults"]
    if "training" in report:
        t = report["training"]
        lines.append(f"  {t['probe']}")
        lines.append(f"  trained: {t['steps']} steps, {t['pairs']} sequences, hindsight "
                     f"`{t['hindsight_strategy']}`, {t['train_seconds']} s")
    lines.append(f"  held-out tasks (N = {h['base']['n']}): rules followed / unit tests pass / every check passes")
    for arm in ("base", "adapter"):
        s = h[arm]
        lo, hi = s["rules_followed_ci"]
        lines.append(f"    {arm:8} {s['rules_followed']:3}/{s['n']} ({s['rules_followed'] / s['n']:.0%}, 95 % "
                     f"{lo:.0%}–{hi:.0%})   tests {s['tests_pass']}/{s['n']}   all {s['all_pass']}/{s['n']}")
    lo, hi = h["difference_ci"]
    lines.append(f"    adapter − base: {h['difference']:+.1%} (paired bootstrap 95 % {lo:+.1%} to {hi:+.1%}); "
                 f"{h['gained']} tasks gained, {h['lost']} lost, exact McNemar p = {h['mcnemar_p']:.3g}")
    if "unchanged" in report:
        u = report["unchanged"]
        lines.append(f"  unchanged tasks (N = {u['base']['n']}): every check passes base {u['base']['all_pass']}, "
                     f"adapter {u['adapter']['all_pass']}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
