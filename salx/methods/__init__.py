"""WTAL methods, one folder each: model, loss, hyperparameters and presets, localization."""
