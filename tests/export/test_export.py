"""`redline adapters export`: the PEFT folder, Ollama's Modelfile, the base-model check, bad versions, the CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from redline.adapters import AdapterRegistry, served_name
from redline.cli import main
from redline.config import Config
from redline.errors import ConfigError, NotFound, RedlineError
from redline.export.runtimes import export_adapter
from tests.export.helpers import build_base


@pytest.mark.slow
def test_dir_export_is_the_registered_folder_byte_for_byte(repo: Config, tmp_path: Path) -> None:
    src = AdapterRegistry(repo.adapters_dir).path("v0001")
    exp = export_adapter(repo, "current", "dir", tmp_path / "exports" / "out")
    assert (exp.version, exp.name, exp.commands) == ("v0001", "app@v0001", [])
    names = sorted(p.name for p in exp.path.iterdir())
    assert names == sorted(p.name for p in src.iterdir() if p.is_file())
    assert {"adapter_config.json", "adapter_model.safetensors", "redline.json"} <= set(names)
    for name in names:
        assert (exp.path / name).read_bytes() == (src / name).read_bytes()
    # exporting again replaces it whole; no temporary sibling is left behind
    export_adapter(repo, "v0001", "dir", exp.path)
    assert [p.name for p in exp.path.parent.iterdir()] == ["out"]


def test_the_default_location_is_the_repos_state_dir(repo: Config) -> None:
    exp = export_adapter(repo, "current", "dir")
    assert exp.path == repo.state_dir / "exports" / "v0001-dir" and exp.path.is_dir()


def test_an_output_that_is_not_an_export_is_never_replaced(repo: Config, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not an adapter export"):
        export_adapter(repo, "current", "dir", mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_no_export_overwrites_a_file_or_the_registry(repo: Config, tmp_path: Path) -> None:
    notes = tmp_path / "notes.gguf"
    notes.write_text("mine")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        export_adapter(repo, "current", "llamacpp", notes)
    assert notes.read_text() == "mine"
    version_dir = AdapterRegistry(repo.adapters_dir).path("v0001")
    with pytest.raises(ConfigError, match="into the adapter registry"):
        export_adapter(repo, "current", "dir", version_dir)
    assert AdapterRegistry(repo.adapters_dir).versions() == ["v0001"]


def test_unknown_version_lists_the_versions(repo: Config) -> None:
    with pytest.raises(NotFound) as err:
        export_adapter(repo, "v0042", "dir")
    assert "v0042" in str(err.value) and "versions: v0001, current" in str(err.value)


def test_current_without_a_promoted_adapter(repo: Config) -> None:
    AdapterRegistry(repo.adapters_dir).rollback()
    with pytest.raises(NotFound, match="export one of: v0001"):
        export_adapter(repo, "current", "dir")


def test_a_base_of_another_shape_is_refused_naming_both(repo: Config, tiny_base: Path, tmp_path: Path) -> None:
    wide = build_base(tmp_path / "wide", hidden=128)
    for target in ("dir", "vllm", "ollama"):
        with pytest.raises(ConfigError) as err:
            export_adapter(repo, "current", target, tmp_path / target, base=str(wide))
        line = str(err.value)
        assert str(tiny_base) in line and str(wide) in line and "layers.0.mlp.down_proj" in line and "\n" not in line
        assert not (tmp_path / target).exists()
    # the same architecture and shapes at another path is fine
    same = build_base(tmp_path / "copy")
    assert export_adapter(repo, "current", "vllm", tmp_path / "ok", base=str(same)).commands[0].count(str(same)) == 1


def test_vllm_hub_ids_are_compared_when_the_adapter_was_trained_on_one(repo: Config, tiny_adapter: Path,
                                                                       tmp_path: Path) -> None:
    from tests.export.helpers import register

    version = register(repo, tiny_adapter, "acme/coder-1b")
    with pytest.raises(ConfigError, match="trained on acme/coder-1b and does not fit acme/coder-7b"):
        export_adapter(repo, version, "vllm", tmp_path / "v", base="acme/coder-7b")
    assert "vllm serve acme/coder-1b " in export_adapter(repo, version, "vllm", tmp_path / "v").commands[0]


def test_served_names() -> None:
    assert served_name("github.com/acme/app", "v0003") == "app@v0003"
    assert served_name("/home/me/my proj/", "v0010") == "my-proj@v0010"


# -- Ollama ------------------------------------------------------------------------------------------------------


def test_ollama_modelfile_and_the_printed_command_when_ollama_is_absent(repo: Config, tiny_base: Path,
                                                                       tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    exp = export_adapter(repo, "current", "ollama", tmp_path / "ol")
    assert (exp.path / "Modelfile").read_text() == f"FROM {tiny_base}\nADAPTER {exp.path}\n"
    assert (exp.path / "adapter_model.safetensors").is_file()
    assert exp.ran is None and exp.name == "app:v0001"
    assert exp.commands == [f"ollama create app:v0001 -f {exp.path / 'Modelfile'}", "ollama run app:v0001"]


def fake_ollama(bin_dir: Path, log: Path, *, exit_code: int = 0) -> None:
    bin_dir.mkdir()
    script = bin_dir / "ollama"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\necho 'Error: pull model manifest: not found' >&2\n"
                      f"exit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_ollama_create_runs_when_ollama_is_on_path(repo: Config, tmp_path: Path, monkeypatch) -> None:
    log = tmp_path / "argv"
    fake_ollama(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    exp = export_adapter(repo, "current", "ollama", tmp_path / "ol", base="qwen2.5-coder:1.5b")
    assert log.read_text().splitlines() == ["create", "app:v0001", "-f", str(exp.path / "Modelfile")]
    assert (exp.path / "Modelfile").read_text().startswith("FROM qwen2.5-coder:1.5b\n")
    assert exp.ran == [f"ollama create app:v0001 -f {exp.path / 'Modelfile'}"]


def test_a_failing_ollama_create_is_one_line(repo: Config, tmp_path: Path, monkeypatch) -> None:
    fake_ollama(tmp_path / "bin", tmp_path / "argv", exit_code=1)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(RedlineError, match=r"failed \(1\): Error: pull model manifest: not found"):
        export_adapter(repo, "current", "ollama", tmp_path / "ol", base="nope")


# -- the CLI -----------------------------------------------------------------------------------------------------


def test_cli_export_and_its_one_line_errors(repo: Config, tmp_path: Path, capsys) -> None:
    main(["adapters", "export", "current", "--to", "vllm", "-o", str(tmp_path / "v")])
    out = capsys.readouterr().out
    assert f"v0001 exported for vllm as app@v0001: {tmp_path / 'v'}" in out and "vllm serve" in out
    with pytest.raises(SystemExit) as exit_:
        main(["adapters", "export", "v0009", "--to", "dir"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == "redline: error: no adapter version 'v0009' — versions: v0001, current"
    assert json.loads((tmp_path / "v" / "redline.json").read_text())["version"] == "v0001"


@pytest.mark.parametrize("target", ["dir", "vllm", "ollama", "llamacpp"])
def test_a_truncated_version_is_never_exported(repo: Config, tiny_base: Path, tmp_path: Path, target: str) -> None:
    """Issue #30: `--to dir` copied a truncated adapter, `--to llamacpp` answered with a traceback."""
    from redline.adapters import AdapterDamaged

    src = AdapterRegistry(repo.adapters_dir).path("v0001")
    os.truncate(src / "adapter_model.safetensors", 1000)
    out = tmp_path / "out"
    with pytest.raises(AdapterDamaged, match="damaged") as err:
        export_adapter(repo, "v0001", target, out, base=str(tiny_base))
    assert "\n" not in str(err.value) and not out.exists()


@pytest.mark.parametrize("target", ["dir", "llamacpp"])
def test_an_output_that_is_a_symbolic_link_is_refused(repo: Config, tiny_base: Path, tmp_path: Path, target: str,
                                                      capsys) -> None:
    """Issue #30: `-o DANGLING_SYMLINK` ended in a traceback; a link to a file would be written through."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for link, points_at in ((tmp_path / "dangling", tmp_path / "nowhere"), (tmp_path / "to-file", victim)):
        link.symlink_to(points_at)
        with pytest.raises(SystemExit):
            main(["adapters", "export", "v0001", "--to", target, "-o", str(link), "--base", str(tiny_base)])
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "symbolic link" in err[0]
        assert link.is_symlink() and victim.read_text() == "keep me" and not (tmp_path / "nowhere").exists()
