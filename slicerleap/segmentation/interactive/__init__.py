"""Interactive segmentation: clicks, boxes and scribbles that build or correct a mask, one interaction at a time.

`InteractiveSession` (session.py) holds the mask and the history; a refiner (grow_from_clicks.py, the classical
fallback that needs no training) turns the prompts inside the interaction's region (region.py) into a new mask
there; click_simulator.py plays the standard simulated annotator for training and evaluation."""
