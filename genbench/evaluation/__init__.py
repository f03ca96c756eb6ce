"""Layer 3, evaluation: the :class:`EvalContext` every metric sees (``context``) and the
evaluation loop that scores a trained model with it (``scoring``: a suite's worker calls it,
and so does ``genbench.evaluate``), built on the features layer."""
