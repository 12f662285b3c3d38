"""Segment specifications shared by tasks and data: name, colour, Slicer terminology, post-processing role."""

LESION_LABEL = {"value": 1, "name": "Lesion", "color": "#e6194b", "role": "lesion",
                "terminology": {"category": "SCT^49755003^Morphologically Altered Structure", "type": "SCT^52988006^Lesion"}}
