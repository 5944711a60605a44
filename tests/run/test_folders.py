"""Two runs of one config never share a version folder: each claims its own before its loggers exist."""
import csv
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ram_lightning.run.folders import claim_version, claim_version_folders, release_empty
from ram_lightning.run.record import read_run_record
from tests.tiny_run import RAM, ROOT, load_checkpoint, subprocess_env


def test_claims_the_next_free_version_and_never_one_taken(tmp_path):
    (tmp_path / "x" / "version_3").mkdir(parents=True)
    (tmp_path / "x" / "version_x").mkdir()
    assert claim_version(tmp_path / "x").name == "version_4"
    with ThreadPoolExecutor(8) as pool:  # many claims at once: all distinct
        folders = list(pool.map(lambda _: claim_version(tmp_path / "x"), range(16)))
    assert len(set(folders)) == 16 and all(f.is_dir() for f in folders)


def test_folder_loggers_without_a_version_get_a_claimed_one(tmp_path):
    config = [{"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "a"}},
              {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "b",
                                                                                  "version": 7}},
              {"class_path": "pytorch_lightning.loggers.WandbLogger", "init_args": {"save_dir": str(tmp_path)}}]
    claimed = claim_version_folders(config)
    assert claimed == [tmp_path / "a" / "version_0"] and config[0]["init_args"]["version"] == 0
    assert config[1]["init_args"]["version"] == 7 and "version" not in config[2]["init_args"]
    (claimed[0] / "metrics.csv").write_text("x\n")
    release_empty(claimed)  # not empty: kept
    assert claimed[0].is_dir()
    again = claim_version_folders([{"class_path": "CSVLogger", "init_args": {"save_dir": str(tmp_path), "name": "a"}}])
    release_empty(again)  # empty: removed
    assert again == [tmp_path / "a" / "version_1"] and not again[0].exists()


def test_a_failed_command_leaves_no_empty_version_folder(tmp_path, tiny_config, write_config):
    config = tiny_config(tmp_path)
    config["data"]["init_args"]["canvas_size"] = 10  # smaller than a digit: the data module refuses it
    run = subprocess.run(RAM + ["fit", "--config", str(write_config(tmp_path, config))], cwd=ROOT, env=subprocess_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "ram: error:" in run.stderr, run.stderr[-2000:]
    assert not list(tmp_path.glob("tiny/version_*"))


# Loaded by both processes (a sitecustomize on their PYTHONPATH): a logger that picks its version by
# listing the folders waits 3 s after the listing, so two runs started together would both take the
# same number if anything still let the logger pick it (without the claim, this test fails).
SLOW_LISTING = """
import time
from lightning_fabric.loggers.csv_logs import CSVLogger
_listing = CSVLogger._get_next_version
def _slow(self):
    version = _listing(self)
    time.sleep(3)
    return version
CSVLogger._get_next_version = _slow
"""


@pytest.mark.slow
def test_two_runs_of_one_config_started_together_keep_their_own_folders(tmp_path, tiny_config, write_config):
    config = tiny_config(tmp_path)
    config["trainer"]["max_epochs"] = 2
    path = write_config(tmp_path, config)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_LISTING)
    env = subprocess_env()
    env["PYTHONPATH"] = f"{tmp_path / 'site'}:{env['PYTHONPATH']}"
    command = RAM + ["fit", "--config", str(path), "--test_after_fit", "false"]
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    folders = sorted(tmp_path.glob("tiny/version_*"))
    assert [f.name for f in folders] == ["version_0", "version_1"]
    for folder in folders:
        with open(folder / "metrics.csv") as handle:
            rows = list(csv.reader(handle))
        assert len({len(row) for row in rows}) == 1 and len(rows) > 3  # one header, every row its width
        steps = [float(r[rows[0].index("step")]) for r in rows[1:]]
        assert steps == sorted(steps) and max(steps) == 5  # one run's 2 epochs x 3 batches, not two runs' interleaved
        checkpoint = load_checkpoint(folder / "checkpoints" / "last.ckpt")  # intact: loads weights-only
        assert checkpoint["global_step"] in (3, 6)  # Lightning's save_last follows the saves of the best
        (record,) = read_run_record(checkpoint)
        assert Path(record["save_dir"]) / record["name"] / f"version_{record['version']}" == folder
