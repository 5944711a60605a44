"""``ram compare``: the estimator lab as a command over the same configs as ``ram fit``.

``command`` (the options and the flow), ``variants`` (``name:option=value`` -> an estimator spec),
``experiment`` (the shared ``ram fit`` config resolved once, its fingerprint), ``runs`` (one
folder and command line per variant and seed), ``job`` (what runs inside a job), ``launch``
(submitit: local processes or a SLURM array; stopping), ``report`` / ``tables`` / ``plot``
(mean ± sd over seeds, verdicts by the 2-standard-error rule, the files of the report),
``trajectories`` (gradient variance and scale choice over training, from each run's metrics.csv).
"""
