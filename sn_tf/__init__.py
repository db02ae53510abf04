"""sn_tf: spectral normalisation for deep RL (Gogianu et al., ICML 2021) in TF."""

__version__ = "0.1.0"
