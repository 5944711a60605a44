"""trainer.precision null: bf16-mixed where the device multiplies bf16 natively, else 32-true, said once."""
from pathlib import Path

import pytest
import torch
import yaml

from ram_lightning.run import precision_choice
from ram_lightning.run.cli import main
from ram_lightning.run.precision_choice import choose_precision

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cpu_units(monkeypatch):
    """``cpu_units(avx512_bf16, amx)``: an x86 CPU with (or without) those units, and no GPU."""
    def set_units(avx512_bf16: bool, amx: bool = False) -> None:
        monkeypatch.setattr(precision_choice.platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return set_units


def test_a_cpu_with_native_bf16_gets_bf16_mixed_and_one_without_gets_32_bit(cpu_units):
    cpu_units(avx512_bf16=True)
    assert choose_precision("auto") == ("bf16-mixed", "this CPU multiplies bf16 natively (AVX512-BF16)")
    cpu_units(avx512_bf16=False, amx=True)
    assert choose_precision("cpu")[0] == "bf16-mixed" and "AMX" in choose_precision("cpu")[1]
    cpu_units(avx512_bf16=False)
    precision, reason = choose_precision("cpu")
    assert precision == "32-true" and "no native bf16" in reason


def test_a_gpu_is_asked_whether_it_supports_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Some GPU")
    for supported, expected in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
        precision, reason = choose_precision("gpu")
        assert precision == expected and "Some GPU" in reason


def test_an_unknown_cpu_architecture_stays_32_bit(monkeypatch):
    monkeypatch.setattr(precision_choice.platform, "machine", lambda: "riscv64")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_precision("auto")[0] == "32-true"


def _printed(args, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["fit", "--config", "configs/quickstart.yaml", *args, "--print_config"])
    captured = capsys.readouterr()
    return yaml.safe_load(captured.out)["trainer"]["precision"], captured.err


def test_the_run_says_which_precision_it_chose_and_an_explicit_one_is_kept(cpu_units, monkeypatch, capsys):
    cpu_units(avx512_bf16=True)
    precision, err = _printed([], monkeypatch, capsys)
    assert precision == "bf16-mixed"
    assert [line for line in err.splitlines() if line.startswith("Precision:")] == [
        "Precision: bf16-mixed, chosen because this CPU multiplies bf16 natively (AVX512-BF16); "
        "set trainer.precision to choose another"]
    precision, err = _printed(["--trainer.precision", "32-true"], monkeypatch, capsys)
    assert precision == "32-true" and "Precision:" not in err
    cpu_units(avx512_bf16=False)
    assert _printed([], monkeypatch, capsys)[0] == "32-true"


def test_bf16_asked_for_on_a_cpu_that_would_emulate_it_is_kept_with_a_warning(cpu_units, monkeypatch, capsys):
    cpu_units(avx512_bf16=False)
    precision, err = _printed(["--trainer.precision", "bf16-mixed"], monkeypatch, capsys)
    assert precision == "bf16-mixed"
    assert [line for line in err.splitlines() if line.startswith("ram: warning: trainer.precision")] == [
        "ram: warning: trainer.precision bf16-mixed on a CPU with no native bf16 matrix unit: its bf16 products "
        "are emulated and run many times slower than 32-true"]
    cpu_units(avx512_bf16=True)
    assert "ram: warning: trainer.precision" not in _printed(["--trainer.precision", "bf16-mixed"], monkeypatch, capsys)[1]
