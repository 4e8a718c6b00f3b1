"""Keras: the same points through Keras 3 (:mod:`.calls`), a model of Keras's algorithm
(:mod:`.model`), the classification of its outputs (:mod:`.check`) and its loss classes and
metrics (:mod:`.forms`)."""

#: Set by the ``cesym`` command while it runs (:func:`cesym.cli.main`): its processes import Keras without
#: ``matplotlib.pyplot`` (:func:`cesym.keras.calls._without_pyplot`); a library user's process
#: imports it as Keras does.
HIDE_PYPLOT = False
