"""Alias kept for old commands, scripts and the console script: the ``ram`` command lives in
:mod:`ram_lightning.run.cli`. ``ram = ram_lightning.cli:main`` (setup.cfg) and
``python -m ram_lightning.cli ...`` (torchrun, Lightning's DDP launcher) start here."""
from ram_lightning.run.cli import RamCLI, build_cli, main

__all__ = ["RamCLI", "build_cli", "main"]

if __name__ == "__main__":
    main()
