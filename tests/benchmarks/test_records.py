"""A lab measurement's --json record: its figures and the command that made them."""
import json

import pytest

from benchmarks.lab.records import refuse_existing, write_record


def test_the_record_holds_the_command_and_the_figures(tmp_path):
    path = tmp_path / "r.json"
    write_record(path, "benchmarks.lab.learned_std", [tmp_path / "a", "--batches", 4], {"a": {"mean_sd": [0.1, 0.0]}})
    record = json.loads(path.read_text())
    assert record == {"command": f"python -m benchmarks.lab.learned_std {tmp_path / 'a'} --batches 4", "a": {"mean_sd": [0.1, 0.0]}}


def test_an_existing_record_is_refused_in_one_line_and_kept(tmp_path, capsys):
    path = tmp_path / "r.json"
    refuse_existing(path)  # a new path passes
    path.write_text('{"kept": 1}')
    with pytest.raises(SystemExit) as stop:
        refuse_existing(path)
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith(f"ram: error: --json {path}: the file exists")
    assert path.read_text() == '{"kept": 1}'
