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

import sys
from typing import List, Optional

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.plugins.io import CheckpointIO
from pytorch_lightning.utilities import rank_zero_info

from ram_lightning.checkpoint_io import SafeCheckpointIO
from ram_lightning.distributed import RankSeeds
from ram_lightning.errors import NonFiniteError, UserError
from ram_lightning.tracking import configure_wandb

# Errors printed as one line ``ram: error: ...`` with these exit statuses (others keep their traceback).
EXIT_STATUS = {UserError: 2, NonFiniteError: 1}


class RamCLI(LightningCLI):
    """LightningCLI with the data -> model links and a test run after ``fit``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--test_after_fit", type=bool, default=True,
            help="After `ram fit`, run the test set on the best checkpoint (ignored by other subcommands).",
        )
        parser.link_arguments("data.image_shape", "model.init_args.image_shape", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.vocabulary", "model.init_args.vocabulary", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Decide W&B's mode (online, or offline said once) before a WandbLogger is built."""
        configure_wandb(self.config_dump_value("trainer").get("logger"))

    def after_fit(self) -> None:
        if not self.config_dump_value("test_after_fit") or self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        ckpt_path = getattr(checkpoint, "best_model_path", "") or None
        rank_zero_info(f"Testing the {'best checkpoint' if ckpt_path else 'final weights'} on the test set")
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)

    def _instantiate_trainer(self, config: dict, callbacks: list) -> pl.Trainer:
        """The Trainer, with ``SafeCheckpointIO`` (weights-only loads, atomic saves) unless the
        config brings a CheckpointIO of its own."""
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins.append(SafeCheckpointIO())
        return super()._instantiate_trainer({**config, "plugins": plugins}, callbacks)

    def config_dump_value(self, key: str):
        return self.config.get(self.subcommand, self.config).get(key)


def build_cli(args: Optional[List[str]] = None, run: bool = True) -> RamCLI:
    return RamCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
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
