"""``ram predict`` for every DataModule: the test split or a folder of images, JSON lines
through Lightning's BasePredictionWriter, and ``Predictions: <path>`` printed last."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ram_lightning.run.cli import main
from tests.tiny_run import ROOT

CAPTION_MODEL = {"class_path": "ram_lightning.AttentionCaptioner", "init_args": {
    "encoder_channels": [4, 8], "embedding_size": 8, "hidden_size": 8, "attention_size": 8, "beam_size": 1,
    "max_length": 5, "inference_embedding": 8, "inference_hidden": 8, "estimator": "reinforce"}}
CAPTION_DATA = {"class_path": "datamodules.SyntheticCaptions", "init_args": {
    "train_size": 8, "val_size": 4, "test_size": 6, "image_size": 16, "batch_size": 4}}


def write_images(folder: Path, sizes, mode="L") -> list:
    folder.mkdir()
    paths = []
    for n, (width, height) in enumerate(sizes):
        path = folder / f"img{n}.{'png' if n % 2 == 0 else 'jpg'}"
        Image.new(mode, (width, height), 255 if mode == "L" else (200, 30, 30)).save(path)
        paths.append(str(path))
    (folder / "notes.txt").write_text("not an image")
    return paths


def predict(args, capsys) -> tuple:
    """Run ``ram predict``; returns (the JSON records, the path printed last)."""
    capsys.readouterr()
    main(["predict", *args])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("Predictions: "), last
    path = Path(last[len("Predictions: "):])
    return [json.loads(line) for line in path.read_text().splitlines()], path


@pytest.mark.slow
def test_classification_predicts_the_test_split_from_a_checkpoint_beside_its_run(tmp_path, monkeypatch, capsys, tiny_config, write_config):
    monkeypatch.chdir(ROOT)
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path))
    main(["fit", "--config", str(config), "--test_after_fit", "false"])
    last = next((tmp_path / "tiny").glob("version_*/checkpoints/last.ckpt"))
    records, path = predict(["--config", str(config), "--ckpt_path", str(last)], capsys)
    assert path == last.parent.parent / "predict" / "predictions.jsonl"
    assert [r["image"] for r in records] == list(range(64))  # test_size of the tiny config
    record = records[0]
    assert set(record) == {"image", "prediction", "probabilities", "locations", "scales"}
    assert record["prediction"] == int(np.argmax(record["probabilities"])) and sum(record["probabilities"]) == pytest.approx(1, abs=1e-5)
    assert len(record["locations"]) == 2 and all(-1 <= v <= 1 for xy in record["locations"] for v in xy)  # num_glimpses: 2
    first = path.read_text()
    capsys.readouterr()
    main(["predict", "--config", str(config), "--ckpt_path", str(last), "--data.init_args.test_size", "4"])
    out, err = capsys.readouterr()
    second = path.with_name("predictions-2.jsonl")
    assert out.strip().splitlines()[-1] == f"Predictions: {second} (predictions.jsonl from an earlier ram predict kept)"
    assert path.read_text() == first and len(path.with_name("predictions-2.jsonl").read_text().splitlines()) == 4
    configs = sorted(p.name for p in path.parent.glob("config*.yaml"))
    assert configs == ["config-2.yaml", "config.yaml"] and f"Config: {path.parent / 'config-2.yaml'}" in err


@pytest.mark.slow
def test_classification_predicts_a_folder_of_png_and_jpeg_files(tmp_path, monkeypatch, capsys, tiny_config, write_config):
    monkeypatch.chdir(ROOT)
    paths = write_images(tmp_path / "images", [(20, 20), (80, 40), (36, 36)])
    config = tiny_config(tmp_path)
    config["data"]["init_args"]["predict_dir"] = str(tmp_path / "images")
    config["model"]["init_args"]["scales"] = [1.0, 2.0]
    records, _ = predict(["--config", str(write_config(tmp_path / "c.yaml", config))], capsys)
    assert [r["image"] for r in records] == paths  # sorted by name, the .txt file left out
    assert all(len(r["probabilities"]) == 10 and r["scales"] is not None and set(r["scales"]) <= {1.0, 2.0} for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["test", "folder"])
def test_captioning_predicts_captions_and_attended_cells(source, tmp_path, monkeypatch, capsys, tiny_config, write_config):
    monkeypatch.chdir(ROOT)
    config = tiny_config(tmp_path)
    config["model"], config["data"] = CAPTION_MODEL, json.loads(json.dumps(CAPTION_DATA))
    if source == "folder":
        write_images(tmp_path / "images", [(30, 30), (16, 16)], mode="RGB")
        config["data"]["init_args"]["predict_dir"] = str(tmp_path / "images")
    records, path = predict(["--config", str(write_config(tmp_path / "c.yaml", config))], capsys)
    assert len(records) == (6 if source == "test" else 2)
    for record in records:
        assert set(record) == {"image", "caption", "tokens", "attended_cells"}
        assert record["caption"] == " ".join(record["tokens"]) and len(record["attended_cells"]) == len(record["tokens"])
        assert all(0 <= r < 4 and 0 <= c < 4 for r, c in record["attended_cells"])  # 16x16 -> 4x4 grid
    assert (path.parent / "vocab.json").is_file()  # written beside the run, as for every captioning run
