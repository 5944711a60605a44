"""Running the models: the ``ram`` command (``cli``) and what it gives every run.

Nothing is imported here, so that ``ram_lightning.run.wandb_server`` can ask the W&B server while
torch loads. ``cli`` (the LightningCLI subclass), ``defaults`` (the shared defaults, filled in from
the run's name and model), ``record`` (where a run logs, kept in its checkpoints), ``folders`` and
``saved_config`` / ``no_clobber`` (nothing shared, nothing replaced), ``checkpoint_io`` (atomic
saves) and ``checkpoint_hparams`` (a checkpoint's hyperparameters against the config), ``signals``
(Ctrl-C / SIGTERM save a resumable checkpoint), ``precision_choice``, ``prediction_writer``,
``rank_seeds``, ``user_errors`` / ``parser_errors`` (one line ``ram: error: ...``), ``batch_counts``,
``quiet``, and W&B: ``wandb_server`` (is it reachable), ``tracking`` (online or offline), ``wandb_run``.
"""
