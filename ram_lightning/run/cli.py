"""The ``ram`` command: Lightning's CLI over the attention models and data modules.

    ram fit --config configs/quickstart.yaml            # trains, then tests the best checkpoint
    ram test --config configs/quickstart.yaml --ckpt_path runs/.../last.ckpt
    ram predict --config configs/quickstart.yaml --ckpt_path runs/.../last.ckpt   # -> predictions.jsonl
    ram fit --config configs/quickstart.yaml --ckpt_path runs/.../last.ckpt       # resume the same run
    ram fit --help ; ram fit --print_config

Models and data modules are chosen by ``class_path`` in the config. The DataModule's
``image_shape`` and ``num_classes`` are linked into the model, so the two cannot disagree.
An estimator is given by registered name (``estimator: reinforce``) or by ``class_path``;
plug-ins installed under the ``ram_lightning.estimators`` entry-point group are found by name.

Every Trainer gets ``SafeCheckpointIO`` (weights-only loads, atomic saves) and the callbacks
``RunRecord`` (where the run logs, kept in its checkpoints), ``SaveOnSignal`` (SIGINT / SIGTERM
save a resumable checkpoint), ``JsonLinesWriter`` (``ram predict`` output) and ``WandbRunLine``
(the URL of an online W&B run, in one line: wandb's own lines are quieted, see
``ram_lightning.run.tracking``). User mistakes end in one line ``ram: error: ...``
(``ram_lightning.run.user_errors``).
"""
from __future__ import annotations

import sys
import warnings
from typing import List, Optional

import ram_lightning.run.wandb_server  # noqa: F401  first: with WANDB_MODE=online it asks W&B while torch loads
import pytorch_lightning as pl
from jsonargparse import Namespace
from jsonargparse._actions import _ActionPrintConfig
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.plugins.io import CheckpointIO
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only
from pytorch_lightning.utilities.exceptions import MisconfigurationException, SIGTERMException

import datamodules  # noqa: F401  the shipped DataModules: `--data TranslatedMNIST` by short name
import ram_lightning.models.captioner  # noqa: F401  the shipped models: `--model.help AttentionClassifier`
import ram_lightning.models.classifier  # noqa: F401
from ram_lightning.run.batch_counts import count_before_fraction
from ram_lightning.run.checkpoint_hparams import check_linked_hparams, explicit_model_keys, merge_checkpoint_hparams
from ram_lightning.models.checkpoint_reading import load_checkpoint_file
from ram_lightning.run.checkpoint_io import SafeCheckpointIO
from ram_lightning.run.rank_seeds import RankSeeds
from ram_lightning.core.image_encoder import build_grid_encoder
from ram_lightning.errors import NonFiniteError, UserError
from ram_lightning.run.signals import SaveOnSignal
from ram_lightning.run.prediction_writer import JsonLinesWriter
from ram_lightning.run.quiet import NoValidationYet, quiet
from ram_lightning.run.defaults import DEFAULTS_FILE, fill_run_defaults
from ram_lightning.run.folders import claim_version_folders, release_empty
from ram_lightning.run.record import RunRecord, apply_run_record, continue_csv_logs, read_run_record
from ram_lightning.run.saved_config import KeepingSaveConfig
from ram_lightning.run.tracking import configure_wandb
from ram_lightning.run.wandb_run import WandbRunLine, drop_default_anonymous, finish_wandb
from ram_lightning.run.user_errors import as_user_error, check_config_files, trainer_option_error

# The end of `ram <subcommand> --help`: where the model's, data's and estimator's options are.
HELP_EPILOG = (
    "The options of a model, data module or estimator are listed by: "
    "ram {sub} --model.help AttentionClassifier (or AttentionCaptioner); "
    "ram {sub} --data.help TranslatedMNIST (or TranslatedScaledMNIST, ClutteredMNIST, Flickr8k, SyntheticCaptions); "
    "ram {sub} --model AttentionClassifier --model.estimator.help WakeSleepCV (or Reinforce, Rloo, Vimco, Pathwise, "
    "WakeSleep, or a plug-in's class path). Shared defaults: ram_lightning/defaults.yaml; the resolved config: "
    "ram {sub} --config FILE --print_config."
)

# Errors printed as one line ``ram: error: ...`` with these exit statuses (others keep their traceback).
EXIT_STATUS = {UserError: 2, NonFiniteError: 1}


def _say(line: str) -> None:
    """Print a line about the run's set-up to stderr, once (on the process of rank 0)."""
    if rank_zero_only.rank == 0:
        print(line, file=sys.stderr, flush=True)


class RamCLI(LightningCLI):
    """LightningCLI with the data -> model links, a test run after ``fit``, and ``--ckpt_path``
    handled safely: read weights-only, its hyperparameters merged with every conflict said, its
    run continued by the loggers."""

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
        count_before_fraction(parser)  # limit_train_batches: 1 is one batch, 1.0 all of them

    def __init__(self, *args, raw_args: Optional[List[str]] = None, **kwargs) -> None:
        self.raw_args = list(sys.argv[1:] if raw_args is None else raw_args)  # to tell explicit model options
        super().__init__(*args, **kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse, fill in the shared defaults that follow the run's name and model
        (:func:`~ram_lightning.run.defaults.fill_run_defaults`), then honour ``--print_config``,
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
        fill_run_defaults(self.config[subcommand] if subcommand else self.config, announce=_say)

    # Lightning's own --ckpt_path values that are not files.
    SPECIAL_CKPT_PATHS = ("last", "best", "hpc")

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``: read the checkpoint once (weights only; a missing, broken or unsafe
        file is one line), merge its hyperparameters over the config saying every conflict
        (``ram_lightning.run.checkpoint_hparams``), and keep its run record for the loggers."""
        self.run_record, self.ckpt_hparams = [], None
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or str(ckpt_path) in self.SPECIAL_CKPT_PATHS or str(ckpt_path).startswith("registry"):
            return
        checkpoint = load_checkpoint_file(ckpt_path)
        self.run_record = read_run_record(checkpoint)
        self.ckpt_hparams = (str(ckpt_path), dict(checkpoint.get("hyper_parameters") or {}))
        model = merge_checkpoint_hparams(checkpoint.get("hyper_parameters", {}), self.config[subcommand].get("model"), ckpt_path,
                                         explicit_keys=explicit_model_keys(self.raw_args))
        if model is not None:
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)

    def before_instantiate_classes(self) -> None:
        """Point the loggers at the checkpoint's run (if any); decide W&B's mode (online, or
        offline said once) before a WandbLogger is built."""
        logger = self.config_dump_value("trainer").get("logger")
        continued = apply_run_record(logger, getattr(self, "run_record", []), self.subcommand,
                                     self.config_dump_value("ckpt_path"))
        for line in continued:
            _say(line)
        if continued:  # Lightning's warnings about reusing the run's folder: that is the point here
            for message in ("The dirpath has changed from", "Experiment logs directory .* exists and is not empty",
                            "Checkpoint directory .* exists and is not empty"):
                warnings.filterwarnings("ignore", message=message)
        self._wandb_lines: List[str] = []  # said after the Data line (instantiate_classes)
        configure_wandb(logger, announce=self._wandb_lines.append)
        self._claimed = claim_version_folders(logger)  # before the loggers exist: two runs never share one

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except BaseException:
            release_empty(getattr(self, "_claimed", []))
            raise
        for line in getattr(self, "_wandb_lines", []):  # the W&B offline line, after the Data line
            print(line, file=sys.stderr, flush=True)

    def after_instantiate_classes(self) -> None:
        super().after_instantiate_classes()
        if getattr(self, "ckpt_hparams", None) and getattr(self, "model", None) is not None:
            check_linked_hparams(*self.ckpt_hparams, self.model.hparams)
        if getattr(self, "run_record", None) and getattr(self, "trainer", None) is not None:
            continue_csv_logs(self.trainer.loggers)
        if getattr(self, "trainer", None) is not None:
            drop_default_anonymous(self.trainer.loggers)
        hand_over_feature_encoder(getattr(self, "datamodule", None))

    def _warn_without_checkpoint(self) -> None:
        if not self.config_dump_value("ckpt_path"):
            _say(f"ram: warning: no --ckpt_path: `ram {self.subcommand}` uses freshly initialised weights")

    before_validate = before_test = before_predict = _warn_without_checkpoint

    def after_fit(self) -> None:
        if not self.config_dump_value("test_after_fit") or self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        ckpt_path = getattr(checkpoint, "best_model_path", "") or None
        rank_zero_info(f"Testing the {'best checkpoint' if ckpt_path else 'final weights'} on the test set")
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)

    def _instantiate_trainer(self, config: dict, callbacks: list) -> pl.Trainer:
        """The Trainer, with ``SafeCheckpointIO`` (weights-only loads, atomic saves) unless the
        config brings a CheckpointIO of its own. The Trainer refusing one of the user's options
        (``max_steps: -5``: Lightning raises MisconfigurationException or ValueError) is a UserError."""
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(SafeCheckpointIO())
        try:
            return super()._instantiate_trainer({**config, "plugins": plugins}, callbacks)
        except UserError:
            raise
        except (MisconfigurationException, ValueError) as error:
            raise trainer_option_error(error, config) from error

    def after_predict(self) -> None:
        """Finish W&B (which prints on exit), then say where the predictions are, last."""
        writer = next((c for c in self.trainer.callbacks if isinstance(c, JsonLinesWriter) and c.path), None)
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
                logger.experiment.finish()
        if writer is not None and self.trainer.is_global_zero:
            print(writer.summary(), flush=True)

    def config_dump_value(self, key: str):
        return self.config.get(self.subcommand, self.config).get(key)


def hand_over_feature_encoder(datamodule) -> None:
    """A caption DataModule that caches a frozen encoder's features (``cache_features``) gets the
    models' encoder builder unless its config named one: data never imports the models."""
    if datamodule is not None and getattr(datamodule, "cache_features", None) and getattr(datamodule, "feature_encoder", 0) is None:
        datamodule.feature_encoder = build_grid_encoder


def build_cli(args: Optional[List[str]] = None, run: bool = True, on_signal: Optional[SaveOnSignal] = None,
              cli_class: type = RamCLI) -> RamCLI:
    """The CLI; ``on_signal``: the SIGINT/SIGTERM callback (made here if not given); ``cli_class``:
    RamCLI or a subclass (``ram compare`` parses with one that stops before building). Lightning's
    lines that tell a user nothing are silenced (``ram_lightning.run.quiet``)."""
    with quiet():
        return _build_cli(args, run, on_signal or SaveOnSignal(args), cli_class)


def _build_cli(args: Optional[List[str]], run: bool, on_signal: SaveOnSignal, cli_class: type = RamCLI) -> RamCLI:
    return cli_class(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        raw_args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_callback=KeepingSaveConfig,  # config.yaml, or config-2.yaml beside an earlier one: never replaced
        # the shared defaults, composed before any --config, for every subcommand
        # a parser error is raised, not printed with the usage: main() says it in one line
        parser_kwargs={"exit_on_error": False,
                       **{sub: {"default_config_files": [str(DEFAULTS_FILE)], "epilog": HELP_EPILOG.format(sub=sub)}
                          for sub in LightningCLI.subcommands()}},
        # appended to the config's callbacks
        trainer_defaults={"callbacks": [RankSeeds(), RunRecord(), on_signal, JsonLinesWriter(announce=False), NoValidationYet(),
                                        WandbRunLine()]},
    )


def find_user_error(error: BaseException) -> Optional[Exception]:
    """The UserError or NonFiniteError behind ``error`` (see ``ram_lightning.run.user_errors``), or None."""
    return as_user_error(error)


def main(args: Optional[List[str]] = None) -> None:
    """Entry point of the ``ram`` console script; user mistakes (exit 2) and diverged training
    (exit 1) print one line, no traceback. The W&B run is finished here, not left to wandb-core
    at exit (which prints its own end lines then, whatever ``WANDB_SHOW_INFO`` says)."""
    on_signal = SaveOnSignal(args)
    UserError.last = None
    try:
        check_config_files(sys.argv[1:] if args is None else args)
        build_cli(args, on_signal=on_signal)
        finish_wandb(0)
    except SIGTERMException:  # SIGINT or SIGTERM: the checkpoint is saved and the line printed
        finish_wandb(on_signal.exit_status)
        raise SystemExit(on_signal.exit_status) from None
    except SystemExit as stop:
        if on_signal.signal is not None and stop.code == 1:  # Lightning's exit after a second Ctrl-C (line printed)
            finish_wandb(on_signal.exit_status)
            raise SystemExit(on_signal.exit_status) from None
        raise
    except Exception as error:
        finish_wandb(1)  # before the error line, so that it stays the last line
        user_error = find_user_error(error)
        if user_error is None:
            raise
        print(f"ram: error: {user_error}", file=sys.stderr)
        raise SystemExit(next(code for cls, code in EXIT_STATUS.items() if isinstance(user_error, cls))) from None


if __name__ == "__main__":
    main()
