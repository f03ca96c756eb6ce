"""Layer 6, execution: the runner, workers, executors, the training engine, data-parallel
training, checkpoints, the output-folder lock, the checks made before training, and the
library's ``genbench.run`` (:func:`genbench.execution.suite.run_and_publish`)."""
