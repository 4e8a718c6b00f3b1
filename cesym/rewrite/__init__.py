"""Rewrite: the numerically stable forms, each rule checked as an identity (:mod:`.rules`)."""
