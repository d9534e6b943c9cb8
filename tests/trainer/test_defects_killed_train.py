"""Issue #12 item 8, fault injection: `redline train` SIGKILLed mid-run and rerun at once resumes from its
checkpoint (its claims belonged to a dead process, so they are taken over without waiting an hour) and
acknowledges every record exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import failing, raw_generation

from redline.config import load_config
from redline.queue.store import SQLiteStore

#: runs the real CLI with INFO logging (so the loop's "resuming from checkpoint" line shows); with PAUSE set, the
#: first checkpoint save then sleeps so the test can kill the run at a known point
RUNNER = textwrap.dedent("""
    import logging, os, sys, time
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if os.environ.get("PAUSE"):
        from redline.trainer import checkpoint
        save = checkpoint.Checkpointer.save
        def slow_save(self, *args, **kwargs):
            path = save(self, *args, **kwargs)
            print("checkpointed", flush=True)
            time.sleep(60)  # killed while we sit here
            return path
        checkpoint.Checkpointer.save = slow_save
    from redline.cli import main
    main(["train", "--max-steps", "6"])
""")


@pytest.mark.slow
def test_defect_8_sigkilled_train_resumes_at_once_and_acks_every_record_once(tiny_model: Path,
                                                                            tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "redline.toml").write_text(
        f'model = "{tiny_model}"\nscrub_secrets = false\n'
        "[train]\nbatch_size = 4\nlr = 0.01\ntop_k = 0\ngate_max_ppl_increase = 10.0\ncheckpoint_every = 2\n")
    config = load_config(root)
    gens = [raw_generation(i, split="train") for i in range(6)] + [raw_generation(100 + i, split="heldout")
                                                                  for i in range(2)]
    store = SQLiteStore(config.db_path)
    store.add(gens, [f for g in gens for f in failing(g)])
    script = tmp_path / "run_train.py"
    script.write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k != "PAUSE"}

    first = subprocess.Popen([sys.executable, str(script)], cwd=root, env={**env, "PAUSE": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.stdout is not None
    while "checkpointed" not in (first.stdout.readline() or ""):  # waits on the run itself, not on a clock
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert store.counts()["states"] == {"claimed": 8}  # the dead run's claims are still in the queue

    again = subprocess.run([sys.executable, str(script)], cwd=root, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming from checkpoint at step 2" in again.stderr
    assert "v0001" in again.stdout
    states = store.counts()["states"]
    assert states == {"trained": 8}, states  # the takeover claimed everything the dead run held, acked once
    meta = json.loads((config.adapters_dir / "versions" / "v0001" / "redline.json").read_text())
    assert len(meta["records"]) == len(set(meta["records"])) == 6
    assert not (config.adapters_dir / "versions" / "v0002").exists()
    store.close()
