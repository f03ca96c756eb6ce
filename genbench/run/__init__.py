"""Layer 6, execution: the runner, workers, executors, the training engine, data-parallel
training, checkpoints, the output-folder lock and the checks made before training."""
