"""A run killed with SIGKILL after a checkpoint resumes and ends with the adapter an uninterrupted run makes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import failing, raw_generation
from safetensors.torch import load_file

from redline.trainer.api import TrainConfig, TrainingExample, train

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
CONFIG = {"max_steps": 8, "checkpoint_every": 2, "batch_size": 4, "micro_batch": 2, "lr": 1e-2, "seed": 7}

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[3])
    from test_resume import CONFIG, make_examples
    from redline.trainer.api import TrainConfig, train

    def slow_after_first_checkpoint(step, stats):
        if step >= 2:
            time.sleep(30)  # the parent kills us while we sit here

    train(sys.argv[1], make_examples(), Path(sys.argv[2]), TrainConfig(**CONFIG), progress=False,
                  on_step=slow_after_first_checkpoint)
""")


def make_examples() -> list[TrainingExample]:
    gens = [raw_generation(i) for i in range(6)]
    return [TrainingExample(g, failing(g)) for g in gens]


def test_sigkill_then_resume_gives_the_uninterrupted_adapter(tiny_model: Path, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_model), str(killed), str(HERE)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pointer = killed / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not pointer.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "adapter_model.safetensors").exists()
    assert pointer.read_text().strip() == "step-000002"

    resumed = train(tiny_model, make_examples(), killed, TrainConfig(**CONFIG), progress=False)
    assert resumed.resumed_from_step == 2 and resumed.metrics["steps_this_run"] == 6
    straight = tmp_path / "straight"
    train(tiny_model, make_examples(), straight, TrainConfig(**CONFIG), progress=False)

    a = load_file(str(killed / "adapter_model.safetensors"))
    b = load_file(str(straight / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # it did train
    assert not (killed / "checkpoints").exists()
