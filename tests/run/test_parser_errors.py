"""jsonargparse's multi-line parser errors summarised in one line (ram_lightning/run/parser_errors.py),
on messages as jsonargparse 4.x writes them."""
import pytest

from ram_lightning.run.parser_errors import summarise_parser_error

NESTED_TYPE = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'pytorch_lightning.core.module.LightningModule'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'ram_lightning.AttentionClassifier':
        Parser key "hidden_size":
          Expected a <class 'int'>. Got value: x
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='hidden_size', val='x')"""

NESTED_CLASS_PATH = """Parser key "model":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'pytorch_lightning.core.module.LightningModule'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'ram_lightning.AttentionClassifier':
        Parser key "estimator":
          Does not validate against any of the Union subtypes
          Subtypes: [<class 'str'>, <class 'estimators.base.Estimator'>]
          Errors:
            - Expected a <class 'str'>
            - Problem with given class_path 'nope.Nope':
                No module named 'nope'
          Given value type: <class 'jsonargparse._util.NestedArg'>
          Given value: NestedArg(key='class_path', val='nope.Nope')
    - Expected a <class 'NoneType'>
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='estimator.class_path', val='nope.Nope')"""

UNION = """Parser key "trainer.max_epochs":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'int'>, <class 'NoneType'>]
  Errors:
    - Expected a <class 'int'>
    - Expected a <class 'NoneType'>
  Given value type: <class 'str'>
  Given value: abc"""

NOT_ACCEPTED = """Parser key "trainer.logger":

  - Expected a path but {class_path: pytorch_lightning.loggers.CSVLogger, init_args: {nosuch: 1}} either not accessible or invalid
  - Does not validate against any of the Union subtypes
  Subtypes: [<class 'pytorch_lightning.loggers.logger.Logger'>, collections.abc.Iterable[pytorch_lightning.loggers.logger.Logger], \
<class 'bool'>, <class 'NoneType'>]
  Errors:
    - Problem with given class_path 'pytorch_lightning.loggers.CSVLogger':
        Option 'nosuch' is not accepted
    - Expected a <class 'collections.abc.Iterable'>
    - Expected a <class 'bool'>
    - Expected a <class 'NoneType'>
  Given value type: <class 'dict'>
  Given value: {'class_path': 'pytorch_lightning.loggers.CSVLogger', 'init_args': {'nosuch': 1}}"""

LITERALS = """Parser key "trainer.precision":
  Does not validate against any of the Union subtypes
  Subtypes: [typing.Literal[64, 32], typing.Literal['bf16-mixed', '32-true'], <class 'NoneType'>]
  Errors:
    - Expected a typing.Literal[64, 32]
    - Expected a typing.Literal['bf16-mixed', '32-true']
    - Expected a <class 'NoneType'>
  Given value type: <class 'str'>
  Given value: 99"""


@pytest.mark.parametrize("message, line", [
    (NESTED_TYPE, "model.init_args.hidden_size: expected int, got 'x'"),
    (NESTED_CLASS_PATH, "model.init_args.estimator.class_path: cannot import 'nope.Nope' (No module named 'nope'); "
                        "expected str or a subclass of Estimator"),
    (UNION, "trainer.max_epochs: expected int, got 'abc'"),
    (NOT_ACCEPTED, "trainer.logger.init_args.nosuch: not an option of pytorch_lightning.loggers.CSVLogger"),
    (LITERALS, "trainer.precision: expected one of 64, 32, 'bf16-mixed', '32-true', got '99'"),
    ("unrecognized arguments: --no_such_option 1", "unrecognized arguments: --no_such_option 1"),
    ("Some new message\n  with details", "Some new message"),
    ('Parser key "ckpt_path":\n\n  - Expected a path but x.ckpt either not accessible or invalid',
     "ckpt_path: Expected a path but x.ckpt either not accessible or invalid"),
    ("", "invalid arguments"),
])
def test_a_parser_error_is_summarised_in_one_line(message, line):
    assert summarise_parser_error(message) == line
