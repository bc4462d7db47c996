"""Build, train and export a tiny report generator whose answer depends on the image.

``python -m tests.tiny_report_export <out>``: a 3-D patch-embedding vision model and a tiny LLaMA with the
tests' byte-level BPE tokenizer (tests/tiny_lm_export.py, `<im_patch>` added), trained jointly for a few
hundred steps so that an image with a bright blob on the left gets one report and the mirrored image
another (and the VQA answer letter follows the side). Exported with llmed.export_report; writes
``<out>/images/{left,right}.f32`` (the preprocessed images, float32 little-endian) and
``<out>/reference.json`` (torch's greedy report ids and text, the VQA letter scores), and prints
``{"export": ...}`` as its last line. Read by packages/runtime/tests/report-generation.test.ts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from tests.tiny_lm_export import build_tokenizer, tiny_llama_lm
from torch import nn

SHAPE = (8, 16, 16)
REPORTS = {"left": "A 12 mm hypodense lesion in the left kidney.", "right": "There is a small right pleural effusion."}
PROMPTS = {
    "report": "{image}please provide a detailed caption outlining the findings in {region} of this image.",
    "vqa": "{image} {question} Choices: {choices} Answer:",
}
QUESTION = "Which side holds the finding?"
CHOICES = {"A": "left", "B": "right", "C": "both", "D": "neither"}
ANSWERS = {"left": "A", "right": "B"}


class TinyVision(nn.Module):
    """(1, 1, 8, 16, 16) → (1, 4, hidden): 4×8×8 patches, a linear projector (the LLM's width)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.patch = nn.Conv3d(1, 16, kernel_size=(8, 8, 8), stride=(8, 8, 8))
        self.project = nn.Sequential(nn.Linear(16, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.project(self.patch(image).flatten(2).transpose(1, 2))


def image(side: str) -> np.ndarray:
    x = np.zeros((1, 1, *SHAPE), np.float32)
    k, j, i = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    ci = 4 if side == "left" else 11
    x[0, 0] = np.exp(-((i - ci) ** 2 + (j - 8) ** 2 + (k - 4) ** 2) / 8.0)
    return x


def main(out: str) -> None:
    from llmed.export_report import export_report_model, fill_prompt

    out_dir = Path(out)
    (out_dir / "tokenizer").mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir / "tokenizer")
    lm = tiny_llama_lm(tokenizer, hidden=32, intermediate=64, max_positions=256)
    vision = TinyVision(lm.config.hidden_size)
    eos = tokenizer.eos_token_id
    embed = lm.get_input_embeddings()

    samples = []  # (image, ids before the image, ids after, answer ids)
    for side, report in REPORTS.items():
        before, after, _ = fill_prompt(PROMPTS["report"], tokenizer, 4, region="abdomen")
        samples.append((side, before, after, tokenizer(" " + report, add_special_tokens=False).input_ids + [eos]))
        choices = " ".join(f"{k}. {v}" for k, v in CHOICES.items())
        before, after, _ = fill_prompt(PROMPTS["vqa"], tokenizer, 4, question=QUESTION, choices=choices)
        samples.append((side, before, after, tokenizer(" " + ANSWERS[side], add_special_tokens=False).input_ids + [eos]))
    params = list(lm.parameters()) + list(vision.parameters())
    optimiser = torch.optim.Adam(params, lr=1e-2)
    for _ in range(120):
        loss = torch.zeros(())
        for side, before, after, answer in samples:
            tokens = vision(torch.from_numpy(image(side)))
            seq = torch.cat([embed(torch.tensor([before])) if before else tokens[:, :0], tokens, embed(torch.tensor([after + answer]))], 1)
            labels = torch.full((1, seq.shape[1]), -100)
            labels[0, -len(answer) :] = torch.tensor(answer)
            loss = loss + lm(inputs_embeds=seq, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    lm.eval()
    vision.eval()

    images = {side: image(side) for side in REPORTS}
    (out_dir / "images").mkdir(exist_ok=True)
    import nibabel as nib

    for side, x in images.items():
        x.astype("<f4").tofile(out_dir / "images" / f"{side}.f32")
        # the same image as a scan: M3D's pipeline reads the array (X, Y, Z) as the tensor (Z, X, Y), and on this
        # grid its min-max and same-size resampling leave the values as they are
        nib.save(nib.Nifti1Image(np.ascontiguousarray(x[0, 0].transpose(1, 2, 0)), np.eye(4)), str(out_dir / "images" / f"{side}.nii.gz"))
    manifest = export_report_model(
        vision,
        lm,
        tokenizer,
        out_dir / "export",
        image_shape=SHAPE,
        preprocess={"pipeline": "m3d", "shape": [SHAPE[1], SHAPE[2], SHAPE[0]]},  # NIfTI order (i, j, k) of a (D, H, W) tensor
        prompts=PROMPTS,
        image_token="<im_patch>",
        stop_ids=[eos],
        generation={"strategy": "greedy", "maxNewTokens": 24},
        parity_images=list(images.values()),
        parity_steps=6,
        source={"what": "tests.tiny_report_export"},
    )

    from llmed.export_report import _greedy_from_embeds

    reference: dict = {"reports": {}, "vqa": {}, "eosId": eos, "choices": CHOICES, "question": QUESTION}
    with torch.no_grad():
        for side, x in images.items():
            tokens = vision(torch.from_numpy(x))
            before, after, _ = fill_prompt(PROMPTS["report"], tokenizer, 4, region="abdomen")
            seq = torch.cat([embed(torch.tensor([before])) if before else tokens[:, :0], tokens, embed(torch.tensor([after]))], 1)
            ids, _ = _greedy_from_embeds(lm, seq, 24)
            cut = ids.index(eos) + 1 if eos in ids else len(ids)
            reference["reports"][side] = {"ids": ids[:cut], "text": tokenizer.decode(ids[:cut], skip_special_tokens=True)}
            choices = " ".join(f"{k}. {v}" for k, v in CHOICES.items())
            before, after, _ = fill_prompt(PROMPTS["vqa"], tokenizer, 4, question=QUESTION, choices=choices)
            seq = torch.cat([embed(torch.tensor([before])) if before else tokens[:, :0], tokens, embed(torch.tensor([after]))], 1)
            logits = lm(inputs_embeds=seq).logits[0, -1]
            letter_ids = {k: tokenizer(" " + k, add_special_tokens=False).input_ids[-1] for k in CHOICES}
            reference["vqa"][side] = {k: float(logits[i]) for k, i in letter_ids.items()}
    reference["parity"] = manifest["parity"]["report"]
    (out_dir / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(json.dumps({"export": str(out_dir / "export")}))


if __name__ == "__main__":
    main(sys.argv[1])
