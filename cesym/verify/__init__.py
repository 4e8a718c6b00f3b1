"""Verify: the interval reference (:mod:`.reference`, :mod:`.extended`), the accuracy contract
(:mod:`.contract`, :mod:`.ulps`) on seeded samples (:mod:`.sampling`) of every kernel case
(:mod:`.registry`), the host's floor (:mod:`.hostfloor`), and the ``cesym verify`` run (:mod:`.run`)."""
