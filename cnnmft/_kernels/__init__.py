"""Private numba kernels: float64 arrays in, preallocated arrays out, integer status codes.

Nothing here validates its arguments or raises on numerical trouble; the public wrappers do
the validation and turn status codes into :class:`cnnmft.results.Status` values.
"""
