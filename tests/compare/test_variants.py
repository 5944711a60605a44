"""Variants: ``name[:option=value,...]`` -> the estimator spec a run gets, K from the config."""
import pytest

from ram_lightning.compare.variants import estimator_spec, folder_name, parse_variant
from ram_lightning.errors import UserError


def test_a_variant_keeps_its_options_and_takes_the_configs_k():
    variant = parse_variant("wake_sleep_cv:prior_coefficient=0,sleep_fraction=0.5")
    assert variant.estimator == "wake_sleep_cv" and variant.options == {"prior_coefficient": 0, "sleep_fraction": 0.5}
    spec = estimator_spec(variant, 5)
    assert spec == {"class_path": "estimators.wake_sleep_cv.WakeSleepCV",
                    "init_args": {"prior_coefficient": 0, "sleep_fraction": 0.5, "num_samples": 5}}


def test_a_variants_own_k_wins_and_no_config_k_leaves_the_estimators_default():
    assert estimator_spec(parse_variant("vimco:num_samples=3"), 5)["init_args"] == {"num_samples": 3}
    assert estimator_spec(parse_variant("reinforce"), None)["init_args"] == {}


def test_a_plug_in_by_class_path():
    spec = estimator_spec(parse_variant("tests.estimators.custom_plugin.PlainScoreFunction"), 2)
    assert spec["class_path"] == "tests.estimators.custom_plugin.PlainScoreFunction"


@pytest.mark.parametrize("spec, message", [
    ("no_such_estimator", "unknown estimator 'no_such_estimator'"),
    ("vimco:num_samples=1", "num_samples must be >= 2"),
    ("reinforce:no_such_option=1", "no_such_option"),
    ("reinforce:baseline", "expected key=value"),
    (":x=1", "empty estimator name"),
])
def test_bad_variants_are_user_errors(spec, message):
    with pytest.raises(UserError, match=message):
        estimator_spec(parse_variant(spec), 5)


def test_folder_names_are_safe_and_distinct():
    assert folder_name("wake_sleep_cv:prior_coefficient=0") == "wake_sleep_cv_prior_coefficient=0"
    assert folder_name("a/b c") == "a_b_c"
    assert folder_name("reinforce:baseline=none") != folder_name("reinforce")
