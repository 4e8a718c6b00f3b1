"""Generate: standalone NumPy kernels printed from the derived forms (:mod:`.codegen`), refused
when they are not real on their domain (:mod:`.domain`) or break at its edges (:mod:`.edges`)."""
