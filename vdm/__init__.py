"""vdm: Luo's discrete-time Variational Diffusion Model, from the math to training and sampling."""

DEFAULT_T = 500  # the assignment's number of diffusion steps (torch-free, so the command line reads it fast)
