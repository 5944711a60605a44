"""Registration, lookup by name, entry-point discovery and clear errors."""
from importlib.metadata import EntryPoint

import pytest
import torch

import estimators.registry as registry
from estimators import Estimator, Reinforce, SampleTerms, available_estimators, get_estimator, register
from ram_lightning.errors import UserError
from tests.estimators.custom_plugin import PlainScoreFunction


def test_builtin_estimators_are_registered():
    assert "reinforce" in available_estimators()
    estimator = get_estimator("reinforce", num_samples=3, baseline="none")
    assert isinstance(estimator, Reinforce) and estimator.num_samples == 3 and estimator.sample_from == "prior"


def test_a_plugin_from_another_module_is_found_by_name_and_used():
    estimator = get_estimator("test_plain_score_function", num_samples=2, weight=0.5)
    assert isinstance(estimator, PlainScoreFunction)
    terms = SampleTerms(torch.zeros(3, 2, requires_grad=True), torch.zeros(3, 2, requires_grad=True))
    out = estimator(terms)
    assert out.metrics["plugin_weight"] == 0.5


def test_entry_point_plugins_are_discovered(monkeypatch):
    class FromEntryPoint(Reinforce):
        pass

    import sys
    import types

    module = types.ModuleType("fake_estimator_package")
    module.FromEntryPoint = FromEntryPoint
    monkeypatch.setitem(sys.modules, "fake_estimator_package", module)
    point = EntryPoint(name="from_entry_point", value="fake_estimator_package:FromEntryPoint", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    assert isinstance(get_estimator("from_entry_point", num_samples=2), FromEntryPoint)


def test_broken_entry_point_names_the_plugin(monkeypatch):
    point = EntryPoint(name="broken", value="no_such_package_xyz:Nothing", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(UserError, match="'broken'.*failed to import"):
        get_estimator("broken")


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(UserError, match=r"unknown estimator 'reinforse'; registered: .*reinforce"):
        get_estimator("reinforse")


@pytest.mark.parametrize("name, closest", [("wake_sleep_cb", "wake_sleep_cv"), ("wakesleep", "wake_sleep"), ("VIMCO", "vimco"),
                                           ("reinforse", "reinforce"), ("something_else", None)])
def test_a_misspelt_name_suggests_the_closest_one(name, closest):
    with pytest.raises(UserError) as error:
        get_estimator(name)
    suggestion = f"; did you mean {closest!r}? Give a registered name" if closest else ". Give a registered name"
    assert suggestion in str(error.value) and str(error.value).count("did you mean") == (closest is not None)


def test_wrong_keyword_names_the_estimator_and_its_signature():
    with pytest.raises(UserError, match=r"estimator 'reinforce' \(Reinforce\).*num_samples"):
        get_estimator("reinforce", num_sample=5)


def test_register_rejects_non_estimators_and_name_clashes():
    with pytest.raises(TypeError):
        register("not_an_estimator")(object)
    with pytest.raises(ValueError, match="already registered"):
        register("reinforce")(type("Other", (Estimator,), {}))


def test_num_samples_is_validated():
    with pytest.raises(UserError, match="num_samples must be an integer >= 1"):
        Reinforce(num_samples=0)


def test_a_dotted_class_path_given_as_a_plain_value_is_imported():
    estimator = get_estimator("tests.estimators.custom_plugin.PlainScoreFunction", num_samples=2, weight=0.5)
    assert isinstance(estimator, PlainScoreFunction) and estimator.weight == 0.5
    with pytest.raises(UserError, match="'no_such_package.Estimator' cannot be imported"):
        get_estimator("no_such_package.Estimator")
    with pytest.raises(UserError, match="not an Estimator subclass"):
        get_estimator("estimators.SampleTerms")


def test_register_sets_the_name_that_messages_use():
    assert get_estimator("wake_sleep_cv").name == "wake_sleep_cv" and Reinforce.name == "reinforce"

    class Unregistered(Reinforce):
        pass

    assert Unregistered.name.endswith("Unregistered") and Reinforce.name == "reinforce"


def test_one_resolver_for_names_class_paths_and_specs():
    assert registry.estimator_class("reinforce") is Reinforce
    assert registry.estimator_class("estimators.reinforce.Reinforce") is Reinforce
    assert type(registry.build_estimator({"class_path": "reinforce", "init_args": {"num_samples": 2}})) is Reinforce
    with pytest.raises(UserError, match=r"--estimators 'x' \(Reinforce\): .*unexpected keyword"):
        registry.construct(Reinforce, {"no_such_option": 1}, "--estimators 'x'")
