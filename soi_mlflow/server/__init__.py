"""soi-mlflow inside ``mlflow server``: the soi pages (``--app-name soi``), the same behind
MLflow's basic authentication (``--app-name soi-auth``), and the server-side data access."""
