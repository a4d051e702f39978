"""The pipeline stages: exam, teach, review, build, train, evaluate, report."""
