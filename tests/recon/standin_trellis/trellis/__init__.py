"""STAND-IN for the upstream ReconViaGen `trellis` package, for tests/recon/test_reconviagen.py only.

It implements just the interface worker/recon/reconviagen.py calls (pipelines.TrellisVGGTTo3DPipeline with
from_pretrained, cuda, preprocess_image, run and two samplers stepping through sample_once; and
utils.postprocessing_utils.to_glb). Instead of generating anything it returns a known mesh, read from the
"weights" directory, moved into a normalised frame as the real pipeline's output would be, so that the
adapter's calls, progress, cancellation and alignment can be checked for real.
"""
