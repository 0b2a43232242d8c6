"""The ECG domain: data, models, training and metrics. Never imports ray or optuna."""
