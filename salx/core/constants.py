"""Facts of the I3D features every tier shares (SPEC, first paragraph).

One definition each: a snippet is 16 frames at 25 fps, a feature vector has 2048
dims, the first half RGB, the second half optical flow; datasets have a training
and a test split.
"""

FEATURE_DIM = 2048
SNIPPET_FRAMES = 16
FEATURE_FPS = 25.0
SECONDS_PER_SNIPPET = SNIPPET_FRAMES / FEATURE_FPS
SPLITS = ("train", "test")
