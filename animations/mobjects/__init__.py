"""The lecture's mobjects, apart from its scenes and data: coloured TeX and derivations
(text), a number redrawn every frame (live_number), sharp pixel images (images), and plots
(plots: curves, histograms, the log SNR panel).
"""
