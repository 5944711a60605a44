"""An estimator as data (class path + options) and back, for every registered estimator."""
import pytest

import tests.estimators.custom_plugin  # noqa: F401
from estimators import available_estimators, build_estimator, estimator_spec, get_estimator
from ram_lightning.errors import UserError


@pytest.mark.parametrize("name", available_estimators())
def test_a_spec_rebuilds_the_same_class_and_options(name):
    estimator = get_estimator(name, num_samples=4)
    spec = estimator_spec(estimator)
    rebuilt = build_estimator(spec)
    assert type(rebuilt) is type(estimator) and rebuilt.num_samples == 4 and estimator_spec(rebuilt) == spec
    assert spec["init_args"]["num_samples"] == 4 and get_estimator(spec).num_samples == 4


def test_the_spec_holds_every_option_with_its_default():
    spec = estimator_spec(get_estimator("reinforce", baseline="moving_average"))
    assert spec == {"class_path": "estimators.reinforce.Reinforce", "init_args": {
        "num_samples": 1, "reward": "log_likelihood", "baseline": "moving_average", "baseline_momentum": 0.9, "entropy_weight": 0.0}}


@pytest.mark.parametrize("spec, message", [
    ({"class_path": "no_such_package.Est"}, "'no_such_package.Est' cannot be imported"),
    ({"class_path": "collections.OrderedDict"}, "is not an Estimator subclass"),
    ({"class_path": "estimators.Reinforce", "init_args": {"no_such_option": 1}}, "unexpected keyword argument"),
])
def test_a_bad_spec_is_one_clear_error(spec, message):
    with pytest.raises(UserError, match=message):
        build_estimator(spec)
