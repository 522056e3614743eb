"""DELU (Chen et al., ECCV 2022): CO2-Net plus evidential and uncertainty-guided losses.

The model, the sampler and the other loss terms are CO2-Net's
(`salx.methods.co2net`, SPEC-CO2NET-DELU 7); `delu.losses` holds the two terms it
adds (SPEC-CO2NET-DELU 2.7, 2.8). The preset is `co2net.hparams.DELU_THUMOS14`.
"""
