"""The launchers: submitit's SLURM executor gets the --slurm options as a job array (checked with
stand-in sbatch / srun commands); a stop request records the signal."""
import os
import signal

import pytest

from ram_lightning.compare.job import run_job
from ram_lightning.compare.launch import StopRequest, make_executor, slurm_parameters
from ram_lightning.compare.runs import RunSpec
from ram_lightning.errors import UserError


def test_slurm_options_become_submitit_parameters():
    assert slurm_parameters(["partition=gpu", "gpus_per_node=1", "timeout_min=120", "constraint=a100"], 4) == {
        "slurm_array_parallelism": 4, "slurm_partition": "gpu", "gpus_per_node": 1, "timeout_min": 120,
        "slurm_constraint": "a100"}
    with pytest.raises(UserError, match="expected --slurm.<option> <value>"):
        slurm_parameters(["partition"], 1)


def _fake_slurm(folder):
    folder.mkdir()
    (folder / "sbatch").write_text('#!/bin/sh\ncp "$1" "$(dirname "$0")/script.sh"\necho "Submitted batch job 4242"\n')
    (folder / "srun").write_text("#!/bin/sh\nexit 0\n")
    for name in ("sbatch", "srun"):
        os.chmod(folder / name, 0o755)


def test_the_slurm_launcher_submits_one_job_array_with_the_options(tmp_path, monkeypatch):
    _fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    executor = make_executor("slurm", tmp_path / "jobs", ["partition=gpu", "gpus_per_node=1", "timeout_min=120"], 2, "ram-compare-ts")
    jobs = executor.map_array(run_job, [RunSpec("reinforce", s, str(tmp_path / f"r{s}"), []) for s in range(3)])
    assert [job.job_id for job in jobs] == ["4242_0", "4242_1", "4242_2"]
    script = (tmp_path / "bin" / "script.sh").read_text()
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=120",
                 "#SBATCH --job-name=ram-compare-ts"):
        assert line in script


def test_no_slurm_here_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="--launcher slurm: .*srun"):
        make_executor("slurm", tmp_path / "jobs", [], 1)


def test_a_stop_request_records_the_first_signal_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert stop.signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) is before


def test_local_jobs_on_a_machine_with_gpus_are_each_given_the_least_busy_gpu(tmp_path, monkeypatch):
    from ram_lightning.compare import launch as launching

    given = []

    class FakeJob:
        def __init__(self, run):
            self.run, self.polls = run, 0

        def done(self):
            self.polls += 1
            return self.polls > 2

        def result(self):
            return {"label": self.run.label, "seed": self.run.seed, "status": "done"}

    class FakeExecutor:
        def __init__(self):
            self.parameters = {}

        def update_parameters(self, **kwargs):
            self.parameters.update(kwargs)

        def submit(self, fn, run):
            given.append(tuple(self.parameters["visible_gpus"]))
            return FakeJob(run)

    monkeypatch.setattr(launching, "make_executor", lambda *args: FakeExecutor())
    monkeypatch.setattr(launching, "local_gpu_count", lambda: 2)
    monkeypatch.setattr(launching, "POLL_SECONDS", 0.0)
    runs = [RunSpec("a", s, str(tmp_path / str(s)), []) for s in range(5)]
    outcomes = launching.launch(runs, "local", tmp_path, 3, [], lambda run, outcome: None, StopRequest())
    assert len(outcomes) == 5 and given[:3] == [(0,), (1,), (0,)] and set(given) == {(0,), (1,)}
