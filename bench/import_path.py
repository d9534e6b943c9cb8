"""The path an outside world takes: records in the documented JSONL format → `redline import` → `redline train
--model PATH` with the `template` hindsight strategy and every other setting at its default → held-out pass rate.

Nothing here is tuned for `bench/world`: the sample repository's `redline.toml` sets only the hindsight template
the tiny model was pretrained with, so this measures Redline's defaults on a model and data it was not built around.

    python bench/import_path.py                 # world-0-0, 96 records, seed 0
    python bench/import_path.py --n 64 --repo 1
    python bench/import_path.py --train epochs=5  # an experiment: a [train] setting added to redline.toml
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.world import HINDSIGHT_TEMPLATE, build_or_load_model, make_records, make_repos, pass_rate  # noqa: E402
from bench.world.records import write_jsonl  # noqa: E402


def redline(cwd: Path, *args: str) -> str:
    env = {**os.environ, "REDLINE_HOME": str(cwd.parent / "home")}
    proc = subprocess.run([sys.executable, "-m", "redline", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, check=False)
    if proc.returncode:
        raise SystemExit(f"`redline {' '.join(args)}` failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=int, default=0, help="which world repository (0-based)")
    parser.add_argument("--n", type=int, default=96, help="feedback records to import")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                        help="a [train] setting for redline.toml, VALUE in TOML (e.g. epochs=5); repeatable")
    args = parser.parse_args(argv)
    bad = [s for s in args.train if not s.partition("=")[2].strip()]
    if bad:
        parser.error(f"--train {bad[0]!r}: expected KEY=VALUE with a TOML value, e.g. epochs=5")
    extra = "".join(f"{key.strip()} = {value.strip()}\n" for key, _, value in (s.partition("=") for s in args.train))
    model = build_or_load_model()
    repo = make_repos(args.repo + 1, 0)[args.repo]
    records = make_records(model, repo, args.n, seed=args.seed)
    for generation, _ in records:
        generation.split = None  # let Redline hold some out for its gate, as it would for anyone's records
    with tempfile.TemporaryDirectory(prefix="redline-import-") as tmp:
        sample = Path(tmp) / "repo"
        sample.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=sample, check=True)
        (sample / "redline.toml").write_text(
            f'[train]\nhindsight = "template"\ntemplate = {json.dumps(HINDSIGHT_TEMPLATE)}\n{extra}', encoding="utf-8")
        write_jsonl(records, sample.parent / "records.jsonl")
        print(redline(sample, "import", str(sample.parent / "records.jsonl")).strip())
        train_out = redline(sample, "train", "--model", str(model))
        print("\n".join(line for line in train_out.splitlines() if line.strip()))
        adapter = next((Path(tmp) / "home").rglob("versions/v0001"))
        print(f"\n{repo.id}, {args.n} imported records, trainer defaults + template"
              + "".join(f" + {s}" for s in args.train))
        for name, path in (("base", None), ("adapter", adapter)):
            held = pass_rate(model, path, repo, repo.heldout_tasks)
            unchanged = pass_rate(model, path, repo, repo.unchanged_tasks)
            print(f"  {name:8} held-out (new tasks) {held:6.1%}   unchanged APIs {unchanged:6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
