"""The page's look: a Gradio theme and a little CSS for the notes, the job card and the report.

System font stacks only, so the page loads nothing from the internet (Spaces
and offline machines alike).
"""

from __future__ import annotations

import gradio as gr

SANS = ["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

THEME = gr.themes.Soft(
    primary_hue="indigo", secondary_hue="sky", neutral_hue="slate", radius_size="md", font=SANS, font_mono=MONO,
).set(
    body_background_fill="*neutral_50",
    block_shadow="0 1px 2px rgba(15, 23, 42, 0.06)",
    button_large_padding="12px 20px",
    button_cancel_background_fill="#dc2626",
    button_cancel_background_fill_hover="#b91c1c",
    button_cancel_text_color="white",
    button_cancel_text_color_hover="white",
    button_cancel_border_color="#dc2626",
)

CSS = """
.gradio-container { max-width: 1320px !important; margin: 0 auto; }
#header { padding: 8px 4px 0; }
#header h1 { font-size: 1.75rem; margin: 0 0 4px; letter-spacing: -0.01em; }
#header p { margin: 0; color: var(--body-text-color-subdued); max-width: 880px; }
#header .tagline { font-size: 1.02rem; color: var(--body-text-color); margin-bottom: 6px; }
.input-note { margin-top: calc(-1 * var(--layout-gap) + 4px); }
.note { font-size: 0.86rem; line-height: 1.35; padding: 5px 10px; border-radius: 6px; border-left: 3px solid; }
.note-idle { color: var(--body-text-color-subdued); border-color: transparent; padding-left: 2px; }
.note-ok { color: #166534; background: #f0fdf4; border-color: #22c55e; }
.note-warning { color: #92400e; background: #fffbeb; border-color: #f59e0b; }
.note-error { color: #991b1b; background: #fef2f2; border-color: #ef4444; font-weight: 500; }
.job-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 12px 14px;
  background: var(--block-background-fill); }
.job-card .job-line { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.job-card code { font-size: 0.95rem; padding: 1px 6px; border-radius: 4px;
  background: var(--background-fill-secondary); }
.job-card .job-detail { margin-top: 6px; color: var(--body-text-color-subdued); font-size: 0.92rem; }
.job-card .job-warnings { margin: 6px 0 0; padding-left: 18px; color: #92400e; font-size: 0.86rem; }
.badge { display: inline-block; font-size: 0.75rem; font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em;
  padding: 2px 9px; border-radius: 999px; background: #e2e8f0; color: #334155; }
.badge-queued { background: #e0e7ff; color: #3730a3; }
.badge-processing { background: #dbeafe; color: #1d4ed8; }
.badge-completed { background: #dcfce7; color: #166534; }
.badge-failed { background: #fee2e2; color: #991b1b; }
.badge-cancelled { background: #f1f5f9; color: #475569; }
.job-empty { color: var(--body-text-color-subdued); }
.job-progress { margin-top: 10px; }
.job-progress-head, .job-progress-times { display: flex; justify-content: space-between; gap: 12px;
  font-size: 0.92rem; }
.job-progress-head .job-stage { color: var(--body-text-color); }
.job-progress-head .job-percent { font-variant-numeric: tabular-nums; font-weight: 600; }
.job-progress-times { margin-top: 4px; color: var(--body-text-color-subdued); font-size: 0.84rem;
  font-variant-numeric: tabular-nums; }
.job-progress-track { height: 10px; margin-top: 6px; border-radius: 999px; background: #e2e8f0; overflow: hidden; }
.job-progress-fill { height: 100%; border-radius: 999px; background: #4f46e5; transition: width 0.4s ease; }
.job-progress-queued .job-progress-track { background: repeating-linear-gradient(-45deg, #e0e7ff 0 10px,
  #eef2ff 10px 20px); }
#confirm-modal { position: fixed; inset: 0; z-index: 1000; margin: 0; padding: 16px; max-width: none;
  align-items: center; justify-content: center; background: rgba(15, 23, 42, 0.55); }
#confirm-dialog { flex-grow: 0 !important; width: min(460px, 100%); padding: 20px 22px; border-radius: 12px;
  background: var(--block-background-fill); border: 1px solid #fca5a5; box-shadow: 0 20px 50px rgba(15, 23, 42, 0.3); }
#confirm-text p { font-size: 1.02rem; margin: 2px 0 10px; }
#confirm-dialog button:focus { outline: 2px solid #4f46e5; outline-offset: 2px; }
.report { font-size: 0.9rem; }
.report-head { font-size: 0.98rem; margin-bottom: 6px; }
.report-stages { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 8px; }
.report-refinement { margin-bottom: 8px; }
.report-stages .stage { background: var(--background-fill-secondary); border-radius: 6px; padding: 2px 8px; }
.report-views { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 0; }
.report-views th, .report-views td { text-align: left; padding: 3px 8px;
  border-bottom: 1px solid var(--border-color-primary); }
.report-views th { color: var(--body-text-color-subdued); font-weight: 500; }
.report-warnings { margin: 8px 0 0; padding-left: 18px; color: #92400e; }
.report-note { margin-top: 6px; color: var(--body-text-color-subdued); font-size: 0.8rem; }
#model-note { font-size: 0.88rem; }
#viewer { min-height: 440px; }
#views .grid-container, #depths .grid-container { grid-template-columns: repeat(6, minmax(0, 1fr)) !important;
  grid-auto-rows: auto !important; }
#views .gallery-item, #depths .gallery-item { aspect-ratio: 1 / 1; }
#views .grid-wrap, #depths .grid-wrap { padding-top: 22px; }
#views [data-testid="block-label"], #depths [data-testid="block-label"] { display: none; }
#track { max-width: 140px; }
#cameras .upload-container { height: auto !important; min-height: 132px; padding-top: 34px; }
.section-head { margin-bottom: calc(-1 * var(--layout-gap) + 6px); }
.section-title { font-size: 0.95rem; }
.section-title span { color: var(--body-text-color-subdued); font-size: 0.86rem; margin-left: 6px; }
.report-views, .report-views tr, .report-views th, .report-views td { border-left: none !important;
  border-right: none !important; border-top: none !important; }
"""
