"""Model layer: encoder construction and the multi-head LightningModule."""
