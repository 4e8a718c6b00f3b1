"""Derive: SymPy's gradient of each loss, and its stable value and gradient (:mod:`.gradients`)."""
