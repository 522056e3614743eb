"""salx run configs: `base.py` holds every field; each other file states its differences."""
