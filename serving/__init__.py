"""Serving: the scoring core shared by the BentoML service and the Dask batch job."""
