"""Model layer: encoder construction, the multi-head LightningModule, checkpoints and the
trained model as an MLflow Model (`mlflow_model.py`, `pyfunc_model.py`)."""
