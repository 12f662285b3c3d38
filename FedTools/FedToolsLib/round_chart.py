"""The federation's rounds as a table node and a plot chart (per-site Dice and training loss, participation),
updated live from a federated job's round log; Qt-free, so the panel only shows the chart."""
from __future__ import annotations

import math

import numpy as np

DICE_COLOURS = [(0.90, 0.10, 0.29), (0.24, 0.71, 0.29), (0.26, 0.39, 0.85), (0.96, 0.51, 0.19), (0.57, 0.12, 0.71), (0.27, 0.94, 0.94)]


def round_columns(history: list[dict]) -> dict[str, np.ndarray]:
    """Columns by round (0 = the initial weights): mean Dice, each site's Dice and training loss (NaN where the
    site did not answer), sites that answered the training request, failed replies."""
    rounds = sorted({entry["round"] for entry in history})
    sites = sorted({int(site.get("site-index", 0)) for entry in history for site in entry["sites"]})
    row = {r: n for n, r in enumerate(rounds)}
    columns = {"Round": np.array(rounds, dtype=np.float64), "Mean Dice": np.full(len(rounds), math.nan)}
    for site in sites:
        columns[f"Site {site} Dice"] = np.full(len(rounds), math.nan)
        columns[f"Site {site} loss"] = np.full(len(rounds), math.nan)
    columns["Sites trained"] = np.zeros(len(rounds))
    columns["Failures"] = np.zeros(len(rounds))
    for entry in history:
        n = row[entry["round"]]
        key = "dice" if entry["phase"] == "evaluate" else "loss"
        for site in entry["sites"]:
            if key in site:
                columns[f"Site {int(site.get('site-index', 0))} {'Dice' if key == 'dice' else 'loss'}"][n] = float(site[key])
        if entry["phase"] == "evaluate" and entry.get("mean_dice") is not None:
            columns["Mean Dice"][n] = float(entry["mean_dice"])
        if entry["phase"] == "train":
            columns["Sites trained"][n] = len(entry["sites"])
        columns["Failures"][n] += len(entry.get("failures") or [])
    return columns


def update_round_chart(scene, history: list[dict], table=None, chart=None, name: str = "Federated rounds"):
    """Fill (or create) a vtkMRMLTableNode with round_columns(history) and a vtkMRMLPlotChartNode plotting mean and
    per-site Dice against the round; returns (table, chart). Call again with the same nodes as rounds arrive."""
    import slicer.util
    import vtk

    columns = round_columns(history)
    if table is None:
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    data = vtk.vtkTable()
    for column_name, values in columns.items():
        array = vtk.vtkDoubleArray()
        array.SetName(column_name)
        for value in values:
            array.InsertNextValue(float(value))
        data.AddColumn(array)
    table.SetAndObserveTable(data)
    if chart is None:
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{name} chart")
        chart.SetTitle("Validation Dice per round (round 0: initial weights)")
        chart.SetXAxisTitle("Round")
        chart.SetYAxisTitle("Dice")
    wanted = ["Mean Dice"] + [c for c in columns if c.endswith(" Dice") and c != "Mean Dice"]
    present = {chart.GetNthPlotSeriesNode(i).GetYColumnName(): chart.GetNthPlotSeriesNode(i) for i in range(chart.GetNumberOfPlotSeriesNodes())}
    for n, column in enumerate(wanted):
        if column in present:
            continue
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", column)
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("Round")
        series.SetYColumnName(column)
        series.SetPlotType(series.PlotTypeScatter)
        series.SetColor(*((0.1, 0.1, 0.1) if column == "Mean Dice" else DICE_COLOURS[(n - 1) % len(DICE_COLOURS)]))
        series.SetLineWidth(4 if column == "Mean Dice" else 2)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return table, chart
