"""The installed package: imported from the environment, carrying what it needs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import diarist
from diarist import _install

from conftest import REPO


def test_the_package_is_the_installed_wheel_not_the_source_tree():
    here = Path(diarist.__file__).resolve()
    assert here.is_relative_to(Path(sys.prefix).resolve()), here
    assert not here.is_relative_to(REPO / "crates"), here
    assert diarist.__version__.count(".") == 2


def test_the_wheel_carries_the_default_models_and_onnx_runtime_with_their_licences():
    models = sorted(p.name for p in _install.MODELS.iterdir())
    assert models == ["campplus", "pii-minilm-l3", "segmentation-3.0"]
    for m in models:
        assert (_install.MODELS / m / "LICENSE").is_file()
        assert (_install.MODELS / m / "manifest.toml").is_file()
    # only the INT8 variants the defaults load
    assert not (_install.MODELS / "campplus" / "campplus.onnx").exists()
    lib = {p.name for p in _install.LIB.iterdir()}
    assert lib == {
        "libonnxruntime.so.1.32.0",
        "LICENSE.onnxruntime",
        "ThirdPartyNotices.onnxruntime.txt",
    }


def test_the_configuration_resolves_into_the_package(pipeline):
    assert str(_install.MODELS / "segmentation-3.0") in pipeline.config
    assert str(_install.LIB / "libonnxruntime.so.1.32.0") in pipeline.config


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed")
def test_without_ray_diarist_ray_says_which_extra_to_install():
    # tools/test_ray.sh tests diarist.ray itself, with the extra installed
    with pytest.raises(ImportError, match=r"pip install 'diarist\[ray\]'"):
        import diarist.ray  # noqa: F401
