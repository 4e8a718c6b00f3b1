"""Keras: the same points through Keras 3 (:mod:`.calls`), a model of Keras's algorithm
(:mod:`.model`), the classification of its outputs (:mod:`.check`) and its loss classes and
metrics (:mod:`.forms`)."""
