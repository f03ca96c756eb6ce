"""Built-in output formats of the leaderboards: ``md``, ``csv``, ``latex``, ``html`` and
``tensorboard``."""
