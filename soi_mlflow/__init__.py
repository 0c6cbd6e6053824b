"""soi-mlflow: Subsets of Interest for multi-setting fine-tuning, as an MLflow workflow.

The package is imported lazily: ``import soi_mlflow`` costs nothing heavy, so the
command line and the analysis stay fast. Sub-packages follow DESIGN.md section 3.
"""

__version__ = "0.1.0"
