"""Stage 2: the training loop, its examples, run-time checks, evaluation and history."""
