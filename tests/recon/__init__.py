"""Tests of the reconstruction engine (worker/recon) and the input renderer."""
