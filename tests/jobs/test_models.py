"""The model registry's options: what a client may ask for, and what a CPU worker runs of it."""

import inspect

import pytest

from webui.readme_page import doc_html
from worker.config import load_settings
from worker.errors import ModelUnavailableError, ReconError
from worker.jobs.models import FUSION, MODELS, NVDIFFREC, availability, require_model


def test_a_cpu_worker_lowers_options_past_its_ceilings_and_says_so():
    asked = FUSION.resolve_options({"grid_resolution": 512, "target_triangles": 0, "texture_size": 4096})
    fitted, notes = FUSION.fit_to_device(asked, "cpu")
    assert fitted == {"grid_resolution": 512, "max_error_ppm": 25, "target_triangles": 500_000, "texture_size": 2048}
    assert notes == ["target_triangles 0 (no limit) is more than a CPU worker runs; it used 500000",
                     "texture_size 4096 is more than a CPU worker runs; it used 2048"]


def test_fusion_simplifies_to_a_tolerance_by_default_within_the_cpu_ceiling():
    defaults = FUSION.resolve_options({})
    assert defaults["max_error_ppm"] == 25 and defaults["target_triangles"] == 500_000
    assert FUSION.fit_to_device(defaults, "cpu") == (defaults, [])


def test_the_registry_s_defaults_are_the_models_own_so_nvdiffrec_starts_from_what_fusion_makes():
    from worker.recon.fusion import reconstruct_fusion
    from worker.recon.nvdiffrec import reconstruct_nvdiffrec

    for spec, function in ((FUSION, reconstruct_fusion), (NVDIFFREC, reconstruct_nvdiffrec)):
        defaults = {name: parameter.default for name, parameter in inspect.signature(function).parameters.items()}
        assert {name: defaults[name] for name in spec.resolve_options({})} == spec.resolve_options({})
    assert {option.name for option in FUSION.options} < {option.name for option in NVDIFFREC.options}


def test_defaults_and_cuda_workers_run_what_was_asked():
    defaults = NVDIFFREC.resolve_options({})
    assert NVDIFFREC.fit_to_device(defaults, "cpu") == (defaults, [])
    heavy = NVDIFFREC.resolve_options({"iterations": 5000, "render_resolution": 2048, "texture_size": 4096})
    assert NVDIFFREC.fit_to_device(heavy, "cuda:0") == (heavy, [])
    assert NVDIFFREC.fit_to_device(heavy, "cpu")[0] == {**defaults, "iterations": 5000, "render_resolution": 512,
                                                         "texture_size": 2048}


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "1e999", 10**400, True, [1], 3.5])
def test_an_option_value_that_is_no_whole_number_in_range_is_refused_by_name(value):
    with pytest.raises(ReconError) as refused:
        FUSION.resolve_options({"grid_resolution": value})
    assert refused.value.field == "options.grid_resolution" and len(refused.value.message) < 200


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_names_a_readme_section_that_exists_for_what_it_needs(name):
    assert f'id="{MODELS[name].guide}"' in doc_html("README.md")


DEFAULTS = load_settings({})


@pytest.mark.skipif(availability(DEFAULTS)["reconviagen"] is None, reason="ReconViaGen can run here")
def test_refusing_an_unavailable_model_points_to_its_readme_section():
    with pytest.raises(ModelUnavailableError) as refused:
        require_model("reconviagen", DEFAULTS)
    assert "/README.md#installing-reconviagen" in refused.value.message
    assert refused.value.field == "model_type"
