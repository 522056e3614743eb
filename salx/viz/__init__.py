"""Pictures of a run: detection timelines, training curves, per-class AP, an index page.

Every drawing function takes arrays, JSON-like data and the postprocess tier's
`Detections` (never the model) and draws with matplotlib's Agg canvas, without
pyplot, so that importing these modules changes no global backend. Modules:
`timeline` (one video, as a PNG file or as pixels for TensorBoard),
`video_inputs` (its checked inputs), `curves` (losses and test mAP against the
step), `ap_bars` (per-class AP, mAP per tIoU), `index_page` (one static HTML
page), `run_pictures` (all of them for one run) and `canvas` (figures of an exact
pixel size).
"""
