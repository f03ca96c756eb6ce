"""Layer 3, evaluation: the :class:`EvalContext` every metric sees, built on the features
layer."""
