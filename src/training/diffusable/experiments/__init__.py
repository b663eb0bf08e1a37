"""The studies built on everything else: the AE protocol and benchmark, the diffusability grid
and its statistics, the GPU pipeline, conditioning, sampler and memorisation measurements."""
