"""Segment specifications shared by tasks and data: name, colour, Slicer terminology, post-processing role."""

LESION_LABEL = {"value": 1, "name": "Lesion", "color": "#e6194b", "role": "lesion",
                "terminology": {"category": "SCT^49755003^Morphologically Altered Structure", "type": "SCT^52988006^Lesion"}}

# distinct colours for labels known only by their value (Sasha Trubetskoy's 20 simple colours, the first ten)
PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#fabebe")


def numbered_label_specs(values) -> list[dict]:
    """Label specs for labelmap values without names: "label N", a colour each."""
    return [{"value": int(v), "name": f"label {int(v)}", "color": PALETTE[n % len(PALETTE)]} for n, v in enumerate(values)]
