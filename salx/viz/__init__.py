"""Pictures of a run: detection timelines, training curves, per-class AP, an index page.

Every drawing function takes arrays and JSON-like data (never the model) and writes
PNG files with matplotlib's Agg canvas, without pyplot, so that importing these
modules changes no global backend. Modules: `timeline` (one video), `curves`
(losses and test mAP against the step), `ap_bars` (per-class AP, mAP per tIoU),
`index_page` (one static HTML page), `events` (scalars of TensorBoard event files,
read without TensorFlow) and `run_pictures` (all of them for one run).
"""
