"""The page's components as one typed record: what the layout builds and every event handler reads or writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr


@dataclass
class Page:
    """Every component an event reads or writes."""

    tokens: gr.State
    active_job: gr.State
    views: gr.Gallery
    views_note: gr.HTML
    depths: gr.Gallery
    depths_note: gr.HTML
    model: gr.Dropdown
    model_note: gr.HTML
    cameras: gr.File
    cameras_note: gr.HTML
    options_note: gr.HTML
    reconstruct: gr.Button
    cancel: gr.Button
    confirm_dialog: gr.Column
    confirm_text: gr.Markdown
    confirm_yes: gr.Button
    confirm_no: gr.Button
    status: gr.HTML
    viewer: gr.Model3D
    download_glb: gr.DownloadButton
    download_report: gr.DownloadButton
    summary: gr.HTML
    comparison: gr.Image
    turntable: gr.Image
    job_box: gr.Textbox
    track: gr.Button
    fills: list[gr.events.Dependency] = field(default_factory=list)  # events that set the inputs: examples, a mesh
    option_groups: dict[str, gr.Column] = field(default_factory=dict)
    options: dict[str, dict[str, gr.Slider | gr.Radio]] = field(default_factory=dict)
