"""The training losses behind the boards as TensorBoard event files (needs the optional
``tensorboard`` package; see :func:`genbench.write_tensorboard`)."""

from __future__ import annotations

from genbench import OutputFormat


class TensorBoardEvents(OutputFormat):
    """TensorBoard event files of the training losses (only with ``--tensorboard DIR``).

    One folder per training behind the boards, a scalar ``loss/<name>`` per loss column."""

    description = ("each training's losses as TensorBoard event files, one folder per "
                   'training (needs: pip install "genbench[tensorboard]")')
    published = False
    option = "--tensorboard"

    def check(self, directory):
        from genbench import check_tensorboard_folder

        check_tensorboard_folder(directory)

    def write(self, boards, store, directory, *, fingerprints=None):
        from genbench import write_tensorboard

        return write_tensorboard(store, directory, fingerprints=fingerprints)
