"""Towers with ``nn.MultiheadAttention`` (ViT, OpenAI-style text) export: the fused fast path is off while tracing."""

from __future__ import annotations

from pathlib import Path

import pytest


def export(path: Path, switch_off: bool) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from mmsearch.encoders.onnx_export import traceable_attention

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            return self.attention(x, x, x, need_weights=False)[0]

    block = Block().eval()
    example = torch.randn(2, 4, 8)
    with torch.inference_mode(), traceable_attention() if switch_off else torch.autograd.grad_mode.no_grad():
        torch.onnx.export(block, (example,), str(path), opset_version=17, dynamo=False)


def test_attention_exports_with_the_fast_path_off(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    export(tmp_path / "block.onnx", switch_off=True)
    assert (tmp_path / "block.onnx").stat().st_size > 0
    assert torch.backends.mha.get_fastpath_enabled()  # restored afterwards


def test_without_it_the_fused_operator_does_not_export(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="_native_multi_head_attention"):
        export(tmp_path / "block.onnx", switch_off=False)
