"""Lightning-side measuring during a training: resume checkpoints and per-epoch seeds
(``resume``), the epoch bar (``epoch_bar``) and lookahead task affinity (``affinity``).
They log through ``tracking``; the trace adapters are ``soi_mlflow.lightning`` and
``soi_mlflow.transformers``."""
