"""From model outputs to detections and their mAP, in NumPy (SPEC 3-5).

    localization.localize(cas, action_flow, action_rgb, video_logits,
                          valid_lengths, num_snippets, variant, ...)  -> Localization
    ap.evaluate_detections(ground_truth, detections, tiou_thresholds) -> EvalResult

One module per job:
  scores          comb, top-k means, video class scores, predicted classes (3.1-3.3)
  curves          linear upsampling and the runs above each threshold (3.4-3.5)
  localization    OIC scores, seconds, `localize` of a batch (3, 4)
  nms             soft-NMS / NMS (3.6)
  detections      the one detections type; ActivityNet JSON read and write (3.7)
  ground_truth    ground truth of a subset, ambiguous segments (5)
  ap              matching, AP, mAP and its named averages, the report table (5)
  classification  video labels, classification accuracy (3.3)
  inputs          reading JSON inputs; EvalInputError names the file
  arrays          vectorized idioms the others share

No JAX: this tier imports only NumPy (and `salx.core.constants`).
"""
