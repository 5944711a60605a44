"""A lab measurement's --json record: its figures and the command that made them."""
import json

from benchmarks.lab.records import write_record


def test_the_record_holds_the_command_and_the_figures(tmp_path):
    path = tmp_path / "r.json"
    write_record(path, "benchmarks.lab.learned_std", [tmp_path / "a", "--batches", 4], {"a": {"mean_sd": [0.1, 0.0]}})
    record = json.loads(path.read_text())
    assert record == {"command": f"python -m benchmarks.lab.learned_std {tmp_path / 'a'} --batches 4", "a": {"mean_sd": [0.1, 0.0]}}
