"""CO2-Net (Hong et al., ACM MM 2021), and DELU's shared parts (SPEC-CO2NET-DELU).

`hparams` (one pytree dataclass for both methods, presets `CO2NET_THUMOS14` and
`DELU_THUMOS14`), `model` (the network of section 1), `losses` (section 2; DELU's
two extra terms live in `salx.methods.delu.losses`), `sampling` (their batch
sampler, section 4) and `torch_names` (their state_dict names, 1.6).
"""
