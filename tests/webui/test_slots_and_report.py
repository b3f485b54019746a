"""The pure parts of the page: slot placement, error sentences and the report summary."""

from webui.input_notes import error_sentence, input_field
from webui.report_view import summarize_report
from webui.slots import EXTRA_CAPTION, arrange, missing_slots, slot_in_name
from worker.errors import FileValidationError, ReconError

SLOTS = ["front", "right", "back", "left", "top", "bottom"]


def test_files_named_after_a_slot_go_to_it_whatever_the_upload_order():
    names = [f"/up/{i}/view_{i}_{slot}.png" for i, slot in enumerate(SLOTS)]
    assert arrange([(name, None) for name in reversed(names)]) == list(zip(names, SLOTS))


def test_unnamed_files_fill_the_free_slots_in_upload_order_and_extras_are_marked():
    items = [("/up/a.png", None), ("/up/Top.PNG", None), ("/up/b.png", None), ("/up/c.png", None),
             ("/up/d.png", None), ("/up/e.png", None), ("/up/f.png", None)]
    arranged = arrange(items)
    assert arranged[:6] == [("/up/a.png", "front"), ("/up/b.png", "right"), ("/up/c.png", "back"),
                            ("/up/d.png", "left"), ("/up/Top.PNG", "top"), ("/up/e.png", "bottom")]
    assert arranged[6] == ("/up/f.png", EXTRA_CAPTION)


def test_a_caption_already_given_keeps_its_slot_and_bare_paths_are_accepted():
    assert arrange([("/up/x.png", "left"), "/up/y.png"]) == [("/up/y.png", "front"), ("/up/x.png", "left")]
    assert slot_in_name("frontal.png") is None and slot_in_name("cow-back.png") == 2


def test_the_empty_slots_are_named_only_once_a_gallery_holds_some_files():
    five = [(f"/up/view_{i}_{slot}.png", None) for i, slot in enumerate(SLOTS) if slot != "back"]
    assert missing_slots(five) == ["back"]
    assert missing_slots([("/up/a.png", None)]) == SLOTS[1:]
    assert missing_slots([]) == [] and missing_slots(None) == []
    assert missing_slots([(f"/up/{i}.png", None) for i in range(7)]) == []


def test_error_sentences_name_the_file_or_key_they_are_about():
    assert error_sentence(FileValidationError("views[2]", "is not a PNG file")) == "View 2 (back) is not a PNG file"
    assert error_sentence(FileValidationError("cameras.frames", "is missing; give 6 frames")).startswith(
        "cameras.json key frames is missing"
    )
    unchanged = "grid_resolution must be a whole number"
    assert error_sentence(ReconError(unchanged)) == unchanged
    assert input_field("depth_renders[3]") == "depth_renders" and input_field("options.grid_resolution") == "options"


def test_the_report_summary_shows_what_is_there_and_escapes_it():
    html = summarize_report({
        "model": "fusion", "wall_time_s": 3.21, "timings": {"fuse": 1.5, "total": 3.0},
        "mesh": {"triangles": 1234, "vertices": 620, "watertight": True},
        "views": [{"slot": slot, "silhouette_iou": 0.99, "depth_error": 0.002} for slot in SLOTS],
        "warnings": ["<script>alert(1)</script>"],
    })
    assert "1,234 triangles" in html and "watertight" in html and "<b>fuse</b> 1.50 s" in html
    assert html.count("<tr><td>") == 6
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "report-views" not in summarize_report({})


def test_a_refining_model_shows_its_before_and_after_and_psnr():
    html = summarize_report({
        "model": "nvdiffrec",
        "views": [{"slot": "front", "silhouette_iou": 0.99, "depth_error": 0.002, "psnr": 27.31}],
        "refinement": {"iterations": 120, "before": {"mean": {"silhouette_iou": 0.98, "psnr": 24.0}},
                       "after": {"mean": {"silhouette_iou": 0.99, "psnr": 27.3}}},
    })
    assert "<th>PSNR (dB)</th>" in html and "<td>27.3</td>" in html
    assert "IoU 0.980 → 0.990" in html and "PSNR 24.0 → 27.3" in html and "120 iterations" in html
    assert "not kept" not in html


def test_a_refinement_that_was_not_kept_says_so():
    unchanged = {"mean": {"silhouette_iou": 0.98, "psnr": 24.0}}
    html = summarize_report({"model": "nvdiffrec", "views": [],
                             "refinement": {"iterations": 96, "kept": False, "before": unchanged, "after": unchanged}})
    assert "PSNR 24.0 → 24.0" in html and "not kept: the starting mesh as it was" in html
