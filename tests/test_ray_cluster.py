"""ray_cluster.yaml passes Ray's own cluster-launcher validation."""

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CONFIG = Path(__file__).resolve().parents[1] / "ray_cluster.yaml"


def test_cluster_config_is_valid():
    config = prepare_config(yaml.safe_load(CONFIG.read_text()))
    validate_config(config)
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["resources"]["GPU"] > 0 and workers["max_workers"] >= workers["min_workers"]
    assert config["available_node_types"]["head"]["resources"].get("GPU", 0) == 0
    assert any(".[vllm]" in command for command in config["setup_commands"])
    assert any("--dashboard-port=8265" in command for command in config["head_start_ray_commands"])


def test_a_broken_config_is_rejected():
    config = yaml.safe_load(CONFIG.read_text())
    config["head_node_type"] = "missing"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(prepare_config(config))
