"""The file queue: pending experiments in an editable YAML file that several workers can share."""
