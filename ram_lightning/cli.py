"""The ``ram`` command: Lightning's CLI over the attention models and data modules.

    ram fit --config configs/quickstart.yaml            # trains, then tests the best checkpoint
    ram test --config configs/quickstart.yaml --ckpt_path runs/.../last.ckpt
    ram fit --help ; ram fit --print_config

Models and data modules are chosen by ``class_path`` in the config. The DataModule's
``image_shape`` and ``num_classes`` are linked into the model, so the two cannot disagree.
An estimator is given by registered name (``estimator: reinforce``) or by ``class_path``;
plug-ins installed under the ``ram_lightning.estimators`` entry-point group are found by name.
"""
from __future__ import annotations

import logging
import sys
from typing import List, Optional

import pytorch_lightning as pl
from jsonargparse import Namespace
from jsonargparse._actions import _ActionPrintConfig
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info

import datamodules  # noqa: F401  the shipped DataModules: `--data TranslatedMNIST` by short name
import ram_lightning.captioner  # noqa: F401  the shipped models: `--model.help AttentionClassifier`
import ram_lightning.classifier  # noqa: F401
from ram_lightning.distributed import RankSeeds
from ram_lightning.errors import NonFiniteError, UserError
from ram_lightning.run_defaults import DEFAULTS_FILE, fill_run_defaults
from ram_lightning.tracking import configure_wandb

# The end of `ram <subcommand> --help`: where the model's, data's and estimator's options are.
HELP_EPILOG = (
    "The options of a model, data module or estimator are listed by: "
    "ram {sub} --model.help AttentionClassifier (or AttentionCaptioner); "
    "ram {sub} --data.help TranslatedMNIST (or TranslatedScaledMNIST, ClutteredMNIST, Flickr8k, SyntheticCaptions); "
    "ram {sub} --model AttentionClassifier --model.estimator.help WakeSleepCV (or Reinforce, WakeSleep, "
    "or a plug-in's class path). Shared defaults: ram_lightning/defaults.yaml; the resolved config: "
    "ram {sub} --config FILE --print_config."
)

# Errors printed as one line ``ram: error: ...`` with these exit statuses (others keep their traceback).
EXIT_STATUS = {UserError: 2, NonFiniteError: 1}


class RamCLI(LightningCLI):
    """LightningCLI with the data -> model links and a test run after ``fit``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--name", type=Optional[str], default=None,
            help="Experiment name: the run folder runs/<name> and the loggers' names "
                 "(default: the stem of the first --config file, else 'ram').",
        )
        parser.add_argument(
            "--test_after_fit", type=bool, default=True,
            help="After `ram fit`, run the test set on the best checkpoint (ignored by other subcommands).",
        )
        parser.link_arguments("data.image_shape", "model.init_args.image_shape", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.vocabulary", "model.init_args.vocabulary", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse, fill in the shared defaults that follow the run's name and model
        (:func:`~ram_lightning.run_defaults.fill_run_defaults`), then honour ``--print_config``,
        so that it prints the values the run will use."""
        if isinstance(args, (dict, Namespace)):
            super().parse_arguments(parser, args)
            self._fill_run_defaults()
            return
        with _ActionPrintConfig.skip_print_config():  # printed below, once filled in
            self.config = parser.parse_args(args, _skip_validation=True)  # validated below, once filled in
        self._fill_run_defaults()
        _ActionPrintConfig.print_config_if_requested(parser, self.config)  # exits when --print_config was given
        try:
            parser.validate(self.config)
        except (TypeError, KeyError) as error:
            parser.error(str(error), error)

    def _fill_run_defaults(self) -> None:
        subcommand = self.config.get("subcommand")
        fill_run_defaults(self.config[subcommand] if subcommand else self.config)

    def before_instantiate_classes(self) -> None:
        """Decide W&B's mode (online, or offline said once) before a WandbLogger is built."""
        self._wandb_lines: List[str] = []  # said after the Data line (instantiate_classes)
        configure_wandb(self.config_dump_value("trainer").get("logger"), announce=self._wandb_lines.append)

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        for line in getattr(self, "_wandb_lines", []):
            print(line, file=sys.stderr, flush=True)

    def after_fit(self) -> None:
        if not self.config_dump_value("test_after_fit") or self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        ckpt_path = getattr(checkpoint, "best_model_path", "") or None
        rank_zero_info(f"Testing the {'best checkpoint' if ckpt_path else 'final weights'} on the test set")
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)

    def config_dump_value(self, key: str):
        return self.config.get(self.subcommand, self.config).get(key)


class _DropLightningTip(logging.Filter):
    """Drops Lightning's start-up advertisement (a "💡 Tip:" to install litlogger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def build_cli(args: Optional[List[str]] = None, run: bool = True) -> RamCLI:
    tip_filter = _DropLightningTip()
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(tip_filter)
    try:
        return _build_cli(args, run)
    finally:
        logging.getLogger("pytorch_lightning.utilities.rank_zero").removeFilter(tip_filter)


def _build_cli(args: Optional[List[str]], run: bool) -> RamCLI:
    return RamCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        # the shared defaults, composed before any --config, for every subcommand
        parser_kwargs={sub: {"default_config_files": [str(DEFAULTS_FILE)], "epilog": HELP_EPILOG.format(sub=sub)}
                       for sub in LightningCLI.subcommands()},
        trainer_defaults={"callbacks": [RankSeeds()]},  # appended to the config's callbacks
    )


def find_user_error(error: BaseException) -> Optional[Exception]:
    """The UserError or NonFiniteError that caused ``error`` (jsonargparse and Lightning wrap
    exceptions), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, tuple(EXIT_STATUS)):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def main(args: Optional[List[str]] = None) -> None:
    """Entry point of the ``ram`` console script; user mistakes (exit 2) and diverged training
    (exit 1) print one line, no traceback."""
    try:
        build_cli(args)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        print(f"ram: error: {user_error}", file=sys.stderr)
        raise SystemExit(next(code for cls, code in EXIT_STATUS.items() if isinstance(user_error, cls))) from None


if __name__ == "__main__":
    main()
