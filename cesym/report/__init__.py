"""Report: the measured record (:mod:`.record`), the Markdown reports rendered from it
(:mod:`.render`), their freshness (:mod:`.check`) and the seed posts' numbers (:mod:`.seeds`)."""
