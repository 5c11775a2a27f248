"""Training: time-split LightGBM models, calibrated, evaluated and registered in MLflow."""
