"""The README's plug-in recipe, verbatim: a package in a fresh folder, installed without network
into a throw-away virtual environment, trains a few batches through `ram fit` by name and by a
dotted class path given as a plain value."""
import re
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.tiny_run import ROOT, subprocess_env


def readme_recipe() -> tuple:
    """(files {relative path: text}, the install command) from the README's "Writing one" part."""
    text = (ROOT / "README.md").read_text()
    part = text[text.index("**Writing one.**"):]
    blocks = re.findall(r"```(\w+)\n(.*?)```", part, flags=re.S)[:3]
    files = {}
    for language, body in blocks[:2]:
        first = body.splitlines()[0]
        assert first.startswith("# "), first
        files[first[2:].split(":")[0].strip()] = body
    assert blocks[2][0] == "bash"
    return files, blocks[2][1].split("#")[0].strip()


def user_environment(env_dir: Path) -> str:
    """A throw-away virtual environment that sees this environment's packages (ram-lightning and
    what it installed, setuptools included) as a user's own environment would, while installs go
    into the throw-away one: the project's environment stays untouched. Not the base Python's
    site-packages: those hold whatever the machine happens to have (setuptools 65 and no wheel on
    a fresh Python 3.11), not what ram-lightning's install brings."""
    venv.EnvBuilder(with_pip=False).create(env_dir)
    (own,) = Path(env_dir).glob("lib/python*/site-packages")
    ours = [path for path in site.getsitepackages() if path.startswith(sys.prefix)]
    # addsitedir also runs the .pth files there (the editable install of ram-lightning)
    (own / "ram_environment.pth").write_text("".join(f"import site; site.addsitedir({path!r})\n" for path in ours))
    return str(Path(env_dir) / "bin" / "python")


@pytest.mark.slow
def test_the_readme_plugin_recipe_works_verbatim_in_a_fresh_folder(tmp_path, tiny_config, write_config):
    files, install = readme_recipe()
    assert set(files) == {"my_package/__init__.py", "pyproject.toml"}
    package = tmp_path / "my-estimator"
    for name, body in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(body)
    python = user_environment(tmp_path / "venv")
    env = subprocess_env()
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")  # no network
    assert install.startswith("pip install ")
    command = [python, "-m", "pip", *install.split()[1:]]
    result = subprocess.run(command, cwd=package, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for estimator in ("my_estimator", "my_package.MyEstimator"):
        root = tmp_path / estimator
        root.mkdir()
        config = write_config(root, tiny_config(root))
        run = subprocess.run([python, "-m", "ram_lightning.cli", "fit", "--config", str(config),
                              "--model.init_args.estimator", estimator, "--test_after_fit", "false"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        (metrics,) = root.glob("tiny/version_*/metrics.csv")
        header = metrics.read_text().splitlines()[0].split(",")
        assert "train/loss" in header and "train/reward" not in header  # the plug-in ran, not reinforce
        (saved,) = root.glob("tiny/version_*/config.yaml")
        assert f"estimator: {estimator}" in saved.read_text()
