"""Configuration: file settings, env overrides, repo ids and clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from redline.config import load_config, normalise_remote, repo_slug
from redline.errors import ConfigError


@pytest.mark.parametrize(
    "url",
    ["git@github.com:Org/Repo.git", "https://github.com/org/repo", "https://user:tok@GitHub.com/org/repo.git/",
     "ssh://git@github.com:22/org/repo.git"],
)
def test_remotes_normalise_to_one_id(url: str) -> None:
    assert normalise_remote(url) == "github.com/org/repo"


def test_repo_id_from_git_remote_and_state_outside_the_tree(tmp_path: Path, redline_home: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:a/b.git"], check=True)
    (tmp_path / "src").mkdir()
    config = load_config(tmp_path / "src")
    assert config.repo_root == tmp_path.resolve() and config.repo_id == "github.com/a/b"
    assert config.db_path.is_relative_to(redline_home) and not config.db_path.is_relative_to(tmp_path / "src")
    assert config.state_dir.name == repo_slug("github.com/a/b")


def test_pyproject_section_then_env_overrides(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.redline]\nheldout_fraction = 0.3\nmodel = "m1"\nstate_dir = ".redline"\n'
    )
    config = load_config(tmp_path, env={"REDLINE_MODEL": "m2", "REDLINE_HOME": str(tmp_path / "h")})
    assert (config.heldout_fraction, config.model) == (0.3, "m2")
    assert config.state_dir == (tmp_path / ".redline").resolve()


def test_redline_toml_takes_precedence(tmp_path: Path) -> None:
    (tmp_path / "redline.toml").write_text("retention_days = 7\n")
    (tmp_path / "pyproject.toml").write_text("[tool.redline]\nretention_days = 99\n")
    assert load_config(tmp_path).retention_days == 7


@pytest.mark.parametrize(
    ("text", "needle"),
    [("heldout_fraction = 2\n", "`heldout_fraction` has a bad value"), ("colour = 'red'\n", "unknown setting"),
     ("model = [\n", "invalid TOML"), ("scrub_secrets = 'perhaps'\n", "`scrub_secrets` has a bad value")],
)
def test_bad_config_names_the_file_and_setting(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "redline.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert needle in str(info.value) and "redline.toml" in str(info.value)
