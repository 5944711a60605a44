"""The ``ram`` console script (``ram = ram_lightning.cli:main``, setup.cfg) and ``python -m
ram_lightning.cli ...`` (torchrun, Lightning's DDP launcher) start here: ``ram compare`` goes to
:mod:`ram_lightning.compare.command`, every other subcommand to :mod:`ram_lightning.run.cli`
(Lightning's CLI; ``RamCLI`` and ``build_cli`` are re-exported for old scripts)."""
import sys
from typing import List, Optional

from ram_lightning.run.cli import RamCLI, build_cli
from ram_lightning.run.cli import main as fit_main

__all__ = ["RamCLI", "build_cli", "main"]


def main(args: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["compare"]:  # estimator variants x seeds of one config
        from ram_lightning.compare.command import main as compare

        compare(argv[1:])
        return
    fit_main(args)


if __name__ == "__main__":
    main()
