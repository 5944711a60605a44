"""The shared ram fit config, resolved once; its fingerprint and what differs between two."""
import pytest

from ram_lightning.compare.experiment import config_num_samples, differing_keys, fingerprint, resolve_fit_config
from ram_lightning.errors import UserError
from tests.run.test_cli import ROOT

BASE = ["--config", str(ROOT / "configs" / "translated_scaled.yaml")]


def test_the_resolved_config_is_what_ram_fit_would_run():
    config = resolve_fit_config(BASE + ["--trainer.max_steps", "30"])
    assert config["trainer"]["max_steps"] == 30 and config["model"]["init_args"]["detach_policy_input"] is True
    assert config_num_samples(config) == 5
    assert config["trainer"]["precision"] in ("32-true", "bf16-mixed")  # filled in, as ram fit does


def test_the_fingerprint_leaves_out_what_differs_per_run_and_names_what_else_differs():
    a = fingerprint(resolve_fit_config(BASE + ["--seed_everything", "3"]))
    b = fingerprint(resolve_fit_config(BASE + ["--config", str(ROOT / "configs" / "translated_scaled" / "reinforce.yaml"),
                                               "--trainer.default_root_dir", "elsewhere"]))
    assert differing_keys(a, b) == []  # the estimator, the seed and the folder are per run
    c = fingerprint(resolve_fit_config(BASE + ["--trainer.max_steps", "31", "--model.init_args.hidden_size", "64"]))
    assert differing_keys(a, c) == ["model.init_args.hidden_size", "trainer.max_steps"]


@pytest.mark.parametrize("args, message", [
    (["--trainer.max_stepz", "3"], "unrecognized arguments: --trainer.max_stepz"),
    (["--model.init_args.hidden_size", "x"], "hidden_size"),
    (["--help"], "not --help or --print_config"),
])
def test_a_mistake_in_the_fit_options_is_a_user_error(args, message):
    with pytest.raises(UserError, match=message):
        resolve_fit_config(BASE + args)
