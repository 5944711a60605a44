"""``ram compare --join``: one report over comparisons that differ in a setting other than the estimator."""
import json
from pathlib import Path

import pytest

from ram_lightning.compare.command import main
from ram_lightning.compare.runs import RunSpec


def fake_comparison(out: Path, lr_scheduler: str, errors) -> Path:
    """A finished comparison in ``out``: reinforce over len(errors) seeds, each run's result.json."""
    runs = []
    for seed, error in enumerate(errors):
        run = RunSpec(label="reinforce", seed=seed, folder=str(out / "reinforce" / f"seed_{seed}"), fit_args=[])
        run.path.mkdir(parents=True)
        curve = [{"update": 100, "seconds": 10.0, "val_error": 2 * error}, {"update": 200, "seconds": 20.0, "val_error": error}]
        (run.path / "result.json").write_text(json.dumps({
            "label": "reinforce", "seed": seed, "test_error": error, "test_error_avg": error / 2, "updates": 200,
            "train_seconds": 20.0, "precision": "32-true", "compiled": False, "curve": curve}))
        runs.append(run.as_dict())
    fingerprint = {"model.init_args.lr_scheduler.class_path": lr_scheduler, "trainer.max_epochs": 30}
    (out / "compare.json").write_text(json.dumps({"fingerprint": fingerprint, "variants": ["reinforce"], "seeds": len(errors),
                                                  "command": "ram compare ...", "title": out.name, "runs": runs}))
    return out


def run(args) -> int:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    return stop.value.code


def test_a_joined_report_labels_each_comparisons_runs_and_names_the_differing_setting(tmp_path, capsys):
    plateau = fake_comparison(tmp_path / "plateau", "torch.optim.lr_scheduler.ReduceLROnPlateau", [0.040, 0.042, 0.038])
    cosine = fake_comparison(tmp_path / "cosine", "torch.optim.lr_scheduler.CosineAnnealingLR", [0.030, 0.031, 0.029])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert run(["--join", plateau, cosine, "--out", tmp_path / "schedule"]) == 0
    table = (tmp_path / "schedule" / "table.md").read_text()
    assert "`reinforce @ plateau`" in table and "`reinforce @ cosine`" in table
    assert ("- `model.init_args.lr_scheduler.class_path`: plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | "
            "cosine: torch.optim.lr_scheduler.CosineAnnealingLR") in table
    assert "trainer.max_epochs" not in table  # the same in both
    one, averaged = table.split("Verdicts on the test error averaging 10 sequences:")
    assert "reinforce @ cosine ahead of reinforce @ plateau by 1.00 ± 0.13 points" in one
    assert "reinforce @ cosine ahead of reinforce @ plateau by 0.50 ± 0.06 points" in averaged  # test_error_avg: half
    results = json.loads((tmp_path / "schedule" / "results.json").read_text())
    assert sorted({r["label"] for r in results}) == ["reinforce @ cosine", "reinforce @ plateau"] and len(results) == 6
    assert {p: p.read_bytes() for p in before} == before  # the joined comparisons are only read


def test_the_verdict_of_a_joined_report_can_say_not_separable(tmp_path):
    a = fake_comparison(tmp_path / "a", "x", [0.040, 0.030, 0.050])
    b = fake_comparison(tmp_path / "b", "y", [0.041, 0.031, 0.051])
    assert run(["--join", a, b, "--out", tmp_path / "ab"]) == 0
    assert "reinforce @ a vs reinforce @ b: not separable at this budget" in (tmp_path / "ab" / "table.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--out", "{a}"], "--out {a}: is one of the joined comparisons"),
    (["--out", "{o}", "--estimators", "reinforce"], "--join: only writes a report; it takes --out, --targets and "
                                                    "--variance-reference, not --estimators"),
    (["--out", "{o}", "--trainer.max_steps", "5"], "not --trainer.max_steps 5"),
    (["--out", "{o}", "--variance-reference", "reinforce"], "--variance-reference 'reinforce': not a joined variant; "
                                                            "they are: reinforce @ a, reinforce @ b"),
])
def test_join_mistakes_are_one_line(extra, message, tmp_path, capsys):
    a = fake_comparison(tmp_path / "a", "x", [0.04, 0.03, 0.05])
    b = fake_comparison(tmp_path / "b", "y", [0.04, 0.03, 0.05])
    names = {"a": a, "o": tmp_path / "o"}
    assert run(["--join", a, b] + [e.format(**names) for e in extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ram: error: ") and err.count("\n") == 1 and message.format(**names) in err


def test_a_folder_that_is_not_a_comparison_is_one_line(tmp_path, capsys):
    a = fake_comparison(tmp_path / "a", "x", [0.04, 0.03, 0.05])
    (tmp_path / "b").mkdir()
    assert run(["--join", a, tmp_path / "b", "--out", tmp_path / "o"]) == 2
    assert capsys.readouterr().err.startswith(f"ram: error: --join {tmp_path / 'b'}: {tmp_path / 'b' / 'compare.json'} not found")
