"""``cluster/aws-gpu.yaml`` is a Ray cluster launcher file Ray itself accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

FILE = Path(__file__).resolve().parents[1] / "cluster" / "aws-gpu.yaml"


def _validate(config: dict) -> None:
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    validate_config(fillout_defaults(config))  # what `ray up` checks before it starts a node


def test_the_launcher_file_passes_rays_schema():
    config = yaml.safe_load(FILE.read_text())
    _validate(config)
    assert config["provider"]["type"] == "aws"
    # the head runs the driver and the tracking server, not trials
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert any("harness server" in c for c in config["head_start_ray_commands"])


def test_the_schema_check_refuses_a_wrong_key():
    config = yaml.safe_load(FILE.read_text())
    with pytest.raises(Exception, match="bogus"):
        _validate({**config, "bogus": 1})
