"""Run folders: claiming one, what a run records, loading it back, and the training that fills it."""
