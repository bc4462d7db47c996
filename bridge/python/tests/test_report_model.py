"""Report generation on tiny local checkpoints of the four families (llama, llama3-style, phi3, qwen2), in
the real on-disk format: the causal LM (image token, padding sides, end-of-text, LoRA, generation that
stops), the report model and its trainer (stages, accumulation, checkpoints of trainable tensors only,
resume, budgets, cached encoder features)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_fixtures import build_tiny_lm, lm_options  # noqa: E402

from fixtures import registered_plugins  # noqa: E402
from llmed.causal_lm import IGNORE, CausalLM  # noqa: E402
from llmed.data import write_prepared_volume  # noqa: E402
from llmed.report import ReportData, ReportModel, ReportTrainer  # noqa: E402
from llmed.train import lr_at  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
PLUGINS = registered_plugins(REPO / "plugins")
FAMILIES = ["llama", "llama3", "phi3", "qwen2"]
HIDDEN = 32


@pytest.fixture(scope="module")
def tiny_lms(tmp_path_factory):
    cache = {}

    def make(family: str) -> dict:
        if family not in cache:
            cache[family] = build_tiny_lm(family, tmp_path_factory.mktemp(f"lm-{family}"), hidden=HIDDEN)
        return cache[family]

    return make


ANSWERS = ["the liver is normal .", "a small cyst in the left kidney .", "no effusion .", "the spleen is enlarged ."]


def prepared(folder: Path, n: int = 4, val: int = 1, answers=ANSWERS) -> Path:
    """A tiny prepared report folder: volumes (K, J, I) = (4, 8, 8) and samples.json."""
    (folder / "volumes").mkdir(parents=True, exist_ok=True)
    samples = []
    rng = np.random.default_rng(0)
    for i in range(n + val):
        write_prepared_volume(folder / "volumes", f"case{i}", rng.random((4, 8, 8)).astype(np.float32))
        samples.append(
            {
                "id": f"case{i}",
                "image": f"volumes/case{i}.json",
                "region": "abdomen",
                "kind": "report",
                "prompt": "describe the findings in abdomen of this image",
                "answer": answers[i % len(answers)],
                "split": "train" if i < n else "val",
            }
        )
    (folder / "samples.json").write_text(json.dumps(samples))
    return folder


def spec_for(info: dict, *, encoder_trainable: bool = False, lora: dict | None = None) -> dict:
    image = {"type": "volume", "channels": 1, "spatial": [8, 8, 4]}
    visual = {"type": "tokens", "length": 8, "width": 16, "grid": [2, 2, 2]}
    projected = {"type": "tokens", "length": 1, "width": HIDDEN, "grid": [1, 1, 1]}
    vit = {"patch": [4, 4, 2], "width": 16, "depth": 1, "heads": 2, "mlpWidth": 32, "qkvBias": False, "cls": True, "select": "patch", "weights": None, "trainable": encoder_trainable, "dropout": 0}
    return {
        "version": 1,
        "task": "report",
        "experiment": "tiny",
        "configFile": "tiny.json",
        "input": image,
        "encoder": {"path": "model.encoder", "id": "vit3d", "kind": "Encoder", "options": vit, "inputs": {"image": image}, "output": visual},
        "projector": {
            "path": "model.projector",
            "id": "spatial-pooling",
            "kind": "Adapter",
            "options": {"pool": 2, "pooling": "avg", "outWidth": HIDDEN, "layers": 2},
            "inputs": {"tokens": visual},
            "output": projected,
        },
        "llm": {"path": "model.llm", "id": info["family"]["id"], "kind": "LLMBackbone", "options": lm_options(info, lora), "inputs": {"tokens": projected}, "output": projected},
        "losses": [{"path": "loss[0]", "id": "token-cross-entropy", "kind": "Loss", "options": {"labelSmoothing": 0, "ignoreIndex": -100}, "inputs": {}, "weight": 1.0}],
    }


def config_for(stages, **train) -> dict:
    return {
        "task": "report",
        "name": "tiny",
        "data": {"kinds": ["report"]},
        # every key filled, as the TypeScript side fills them from the schema (config-report.ts)
        "train": {
            "stages": stages,
            "batchSize": 2,
            "gradientAccumulation": 1,
            "optimizer": "adamw",
            "weightDecay": 0,
            "schedule": "cosine",
            "warmup": 0.0,
            "maxLength": 48,
            "precision": "fp32",
            "gradientCheckpointing": False,
            "seed": 0,
            "checkpointEvery": 100,
            "validateEvery": 100,
            "timeBudgetMinutes": 0,
            "maxSamples": 0,
            **train,
        },
        "generate": {"strategy": "greedy", "maxNewTokens": 12, "temperature": 1.0, "topP": 0.9, "seed": 0},
    }


def trainer(tmp_path, info, stages, run="run", options=None, spec=None, answers=ANSWERS, **train) -> ReportTrainer:
    data = prepared(tmp_path / "prepared", answers=answers)
    return ReportTrainer(tmp_path / run, spec or spec_for(info), config_for(stages, **train), data, {"device": "cpu", "plugins": PLUGINS, "workspaceRoot": str(REPO), **(options or {})})


# ---- the causal LM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_image_token_is_one_special_token_with_the_mean_row(family, tiny_lms):
    info = tiny_lms(family)
    lm = CausalLM(lm_options(info))
    assert lm.tokenizer("<im_patch>", add_special_tokens=False)["input_ids"] == [lm.image_id]
    emb = lm.model.get_input_embeddings().weight
    assert torch.allclose(emb[lm.image_id], emb[: lm.old_rows].mean(dim=0), atol=1e-6)
    if family == "llama3":
        assert lm.tokenizer.convert_ids_to_tokens(lm.eot_id) == "<|end_of_text|>"  # the family's, not the tokenizer's eos
    else:
        assert lm.eot_id == lm.tokenizer.eos_token_id
    enc = lm.encode_sample(3, "describe the liver", "the liver is normal .", 64)
    assert enc.ids.count(lm.image_id) == 3
    answer_positions = [i for i, v in enumerate(enc.labels) if v != IGNORE]
    assert enc.labels[-1] == lm.eot_id and enc.ids[answer_positions[0] :] == enc.labels[answer_positions[0] :]
    assert all(v == IGNORE for v in enc.labels[: answer_positions[0]])


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_wraps_every_linear_projection_and_freezes_the_base(family, tiny_lms):
    lm = CausalLM(lm_options(tiny_lms(family)))
    wrapped = {n.split(".")[-1] for n, m in lm.model.named_modules() if hasattr(m, "lora_A")}
    expected = {"phi3": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}}.get(family, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
    assert wrapped == expected
    lora = next(m for n, m in lm.model.named_modules() if hasattr(m, "lora_A"))
    assert lora.r["default"] == 16 and lora.scaling["default"] == 32 / 16 and lora.lora_dropout["default"].p == 0.05
    assert not any(p.requires_grad for n, p in lm.model.named_parameters() if "lora_" not in n)


def test_right_padding_for_training_and_left_padding_for_generation(tiny_lms):
    lm = CausalLM(lm_options(tiny_lms("llama")))
    a = lm.encode_sample(2, "describe", "the liver is normal .", 64)
    b = lm.encode_sample(2, "describe the liver", "no .", 64)
    batch = lm.collate([a, b])
    short = min(len(a.ids), len(b.ids))
    row = 0 if len(a.ids) == short else 1
    assert batch["attention_mask"][row, :short].all() and not batch["attention_mask"][row, short:].any()
    assert (batch["labels"][row, short:] == IGNORE).all()
    # batched (left-padded) greedy decoding gives each prompt what it gets alone
    torch.manual_seed(0)
    img = torch.randn(2, 2, HIDDEN)
    together = lm.generate(["describe", "describe the liver in this image"], img, max_new_tokens=6)
    alone = [lm.generate([p], img[i : i + 1], max_new_tokens=6)[0] for i, p in enumerate(["describe", "describe the liver in this image"])]
    assert [t["ids"] for t in together] == [t["ids"] for t in alone]


def test_generation_stops_at_end_of_text(tiny_lms):
    lm = CausalLM(lm_options(tiny_lms("llama3")))
    calls = {"n": 0}

    def end_after_three(_module, _inputs, logits):
        # the LM head's 4th call (prefill + 3 decoded tokens) makes end-of-text the most likely token
        calls["n"] += 1
        if calls["n"] >= 4:
            logits = logits.clone()
            logits[..., lm.eot_id] += 1e4
        else:
            logits = logits.clone()
            logits[..., lm.eot_id] -= 1e4
        return logits

    hook = lm.model.get_output_embeddings().register_forward_hook(end_after_three)
    out = lm.generate(["describe"], torch.randn(1, 2, HIDDEN), max_new_tokens=20)[0]
    hook.remove()
    assert out["stopped"] and len(out["ids"]) == 3 and lm.eot_id not in out["ids"]
    # without end-of-text it runs to max_new_tokens and says so
    hook = lm.model.get_output_embeddings().register_forward_hook(lambda m, i, o: o.index_fill(-1, torch.tensor([lm.eot_id]), -1e4))
    out = lm.generate(["describe"], torch.randn(1, 2, HIDDEN), max_new_tokens=7)[0]
    hook.remove()
    assert not out["stopped"] and len(out["ids"]) == 7


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_a_few_steps_as_a_report_generator(family, tiny_lms, tmp_path):
    info = tiny_lms(family)
    t = trainer(tmp_path, info, [{"name": "align", "train": ["projector"], "steps": 1, "lr": 1e-3}, {"name": "lora", "train": ["projector", "lora"], "steps": 2, "lr": 1e-3}])
    status = t.run()
    assert status["state"] == "done", status.get("traceback")
    assert status["step"] == 3 and math_finite(status["loss"])
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    phases = [e for e in events if e["event"] == "phase"]
    assert [p["stage"] for p in phases] == ["align", "lora"]
    assert phases[0]["trainable"] < phases[1]["trainable"]  # LoRA factors join in stage 2
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    assert any("lora_" in k for k in saved) and any(k.startswith("projector.") for k in saved)
    # only trainable tensors (and buffers): no frozen LLM or encoder weight is written again
    assert not any(k.endswith("q_proj.base_layer.weight") or k.startswith("encoder.blocks") or "embed_tokens" in k for k in saved)
    assert status["samples"] and isinstance(status["samples"][0]["generated"], str)


@pytest.mark.parametrize("family", FAMILIES)
def test_answer_position_logits_give_the_loss_and_gradients_of_the_full_logits(family, tiny_lms, tmp_path):
    """The trainer's forward computes logits only where an answer token is predicted (the LM head skips the
    prompt, image and pad positions): the same loss and the same LoRA/projector gradients as all logits."""
    info = tiny_lms(family)
    t = trainer(tmp_path, info, [{"name": "lora", "train": ["projector", "lora"], "steps": 1, "lr": 1e-3}])
    t._setup()
    t._enter_stage(0, resuming=False)
    assert t.model.targets_only
    batch = t._batch(t.train_samples[:2])
    assert int((batch["attention_mask"] == 0).sum()) > 0  # rows of different lengths: pads are skipped too

    def loss_and_grads(all_logits: bool):
        t.model.zero_grad(set_to_none=True)
        out = t.model(batch, all_logits=all_logits)
        loss, _ = t.model.loss(out, batch)
        loss.backward()
        return out, float(loss), [p.grad.clone() for p in t.model.parameters() if p.requires_grad]

    t.model.eval()  # no LoRA dropout: both passes see the same function
    part, loss_part, grads_part = loss_and_grads(False)
    full, loss_full, grads_full = loss_and_grads(True)
    n_targets = int((batch["labels"][:, 1:] != IGNORE).sum())
    assert part["logits"].shape == (n_targets, full["logits"].shape[-1]) and full["logits"].dim() == 3
    assert loss_part == pytest.approx(loss_full, rel=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads_part, grads_full))


def math_finite(x) -> bool:
    return x is not None and np.isfinite(x)


def test_overfitting_one_report_generates_it_and_stops(tiny_lms, tmp_path):
    info = tiny_lms("llama")
    spec = spec_for(info)
    t = trainer(
        tmp_path, info, [{"name": "lora", "train": ["projector", "lora", "embeddings"], "steps": 60, "lr": 1e-2}], spec=spec, maxSamples=1, batchSize=1, validateEvery=1000, checkpointEvery=1000
    )
    status = t.run()
    assert status["state"] == "done", status.get("traceback")
    sample = t.train_samples[0]
    out = t.generate_for([sample], maxNewTokens=20)[0]
    assert out["generated"] == sample.answer.replace(" .", ".") or out["generated"].split() == sample.answer.split()
    assert out["stopped"]


def test_resume_continues_the_losses_of_the_uninterrupted_run(tiny_lms, tmp_path):
    info = tiny_lms("qwen2")
    stages = [{"name": "a", "train": ["projector"], "steps": 2, "lr": 1e-3}, {"name": "b", "train": ["projector", "lora"], "steps": 2, "lr": 1e-3}]
    full = trainer(tmp_path, info, stages, run="full", checkpointEvery=1)
    assert full.run()["state"] == "done"
    part = trainer(tmp_path, info, stages, run="part", options={"timeBudgetMinutes": 1e-9}, checkpointEvery=1)
    st = part.run()
    assert st["state"] == "stopped" and st["reason"] == "time-budget" and st["step"] == 1
    resumed = trainer(tmp_path, info, stages, run="part", options={"resume": True}, checkpointEvery=1)
    assert resumed.run()["state"] == "done"

    def losses(run):
        return [e["loss"] for e in map(json.loads, (tmp_path / run / "log.jsonl").read_text().splitlines()) if e["event"] == "step"]

    assert losses("part") == pytest.approx(losses("full"), rel=1e-5)


def test_gradient_accumulation_matches_the_bigger_batch(tiny_lms, tmp_path):
    info = tiny_lms("phi3")
    stages = [{"name": "p", "train": ["projector"], "steps": 1, "lr": 1e-3}]
    same = ["the liver is normal ."]  # equal token counts: the mean of two micro-batch means is the batch mean
    big = trainer(tmp_path, info, stages, run="big", answers=same, batchSize=2, gradientAccumulation=1)
    acc = trainer(tmp_path, info, stages, run="acc", answers=same, batchSize=1, gradientAccumulation=2)
    for t in (big, acc):
        assert t.run()["state"] == "done"
    # the gradients of the one step are still on the parameters (they are cleared at the start of a step)
    grads_big = [p.grad for p in big.model.projector.parameters()]
    grads_acc = [p.grad for p in acc.model.projector.parameters()]
    assert all(g is not None for g in grads_big)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads_big, grads_acc))


def test_frozen_encoder_features_are_cached_per_sample(tiny_lms, tmp_path, monkeypatch):
    info = tiny_lms("llama")
    t = trainer(tmp_path, info, [{"name": "p", "train": ["projector"], "steps": 2, "lr": 1e-3}])
    assert t.run()["state"] == "done"
    files = sorted((tmp_path / "prepared" / "features").rglob("*.safetensors"))
    assert len(files) == 5  # 4 training + 1 validation sample, each encoded once
    assert t.cache_features
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["samples"] for e in events if e["event"] == "features"] == [5]  # before the first step
    assert [e["event"] for e in events].index("features") < [e["event"] for e in events].index("step")
    # a second run reads the cached tokens instead of encoding again
    again = trainer(tmp_path, info, [{"name": "p", "train": ["projector"], "steps": 1, "lr": 1e-3}], run="again")

    def no_encoding(self, volumes):
        raise AssertionError("a cached sample was encoded again")

    monkeypatch.setattr(ReportModel, "encode", no_encoding)
    st = again.run()
    assert st["state"] == "done"
    assert torch.equal(again._features["volumes/case0.json"], t._features["volumes/case0.json"])


def test_samples_sharing_a_volume_are_encoded_once(tiny_lms, tmp_path):
    """The regions of one scan (and every sample of a blind run) name one prepared volume: one encoding."""
    info = tiny_lms("llama")
    t = trainer(tmp_path, info, [{"name": "p", "train": ["projector"], "steps": 1, "lr": 1e-3}])
    doc = json.loads((tmp_path / "prepared" / "samples.json").read_text())
    for s in doc:
        s["image"] = "volumes/case0.json"
    (tmp_path / "prepared" / "samples.json").write_text(json.dumps(doc))
    assert t.run()["state"] == "done"
    assert len(list((tmp_path / "prepared" / "features").rglob("*.safetensors"))) == 1


def test_a_standardising_projector_is_fitted_on_the_training_features_and_saved(tiny_lms, tmp_path):
    info = tiny_lms("llama")
    spec = spec_for(info)
    visual = spec["encoder"]["output"]
    projected = {"type": "tokens", "length": visual["length"], "width": HIDDEN, "grid": visual["grid"]}
    spec["projector"] = {
        "path": "model.projector",
        "id": "linear",
        "kind": "Adapter",
        "options": {"outWidth": HIDDEN, "bias": True, "tokens": "all", "normalise": "standardise"},
        "inputs": {"tokens": visual},
        "output": projected,
    }
    spec["llm"]["inputs"] = {"tokens": projected}
    spec["llm"]["output"] = projected
    t = trainer(tmp_path, info, [{"name": "p", "train": ["projector"], "steps": 2, "lr": 1e-3}], spec=spec)
    st = t.run()
    assert st["state"] == "done", st.get("message")
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    fit = [e for e in events if e["event"] == "projector-fit"]
    assert len(fit) == 1 and fit[0]["samples"] == 4
    emb = t.model.lm.model.get_input_embeddings().weight[: t.model.lm.old_rows].float()
    assert fit[0]["tokenRms"] == round(float(emb.pow(2).mean().sqrt()), 5)  # tokens start at the embeddings' scale
    names = [e["event"] for e in events]
    assert names.index("projector-fit") < names.index("step")
    feats = torch.stack([t._features_of(s) for s in t.train_samples]).reshape(-1, visual["width"])
    proj = t.model.projector
    assert torch.allclose(proj.feature_mean, feats.mean(0), atol=1e-5)
    assert torch.allclose(proj.feature_scale, feats.std(0, unbiased=False), atol=1e-5)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    assert torch.equal(saved["projector.feature_mean"], proj.feature_mean)
    assert bool(saved["projector.fitted"])
    # a trained encoder has no cached features to fit on: refused, naming the projector
    spec["encoder"]["options"]["trainable"] = True
    st = trainer(tmp_path, info, [{"name": "e", "train": ["encoder", "projector"], "steps": 1, "lr": 1e-3}], run="trained", spec=spec).run()
    assert st["state"] == "error" and "model.projector (linear) standardises" in st["message"] and "frozen encoder" in st["message"]


def test_a_frozen_encoder_cannot_be_listed_as_trained(tiny_lms, tmp_path):
    info = tiny_lms("llama")
    spec = spec_for(info)
    spec["encoder"] = {
        "path": "model.encoder",
        "id": "i3resnet152",
        "kind": "Encoder",
        "options": {"weights": "random", "backbone": "astra", "pool": "mean", "layout": "llmed"},
        "inputs": {"image": spec["input"]},
        "output": {"type": "tokens", "length": 1, "width": 2048, "grid": [1, 1, 1]},
    }
    spec["projector"] = {
        "path": "model.projector",
        "id": "linear",
        "kind": "Adapter",
        "options": {"outWidth": HIDDEN, "bias": True, "tokens": "all", "normalise": "none"},
        "inputs": {"tokens": spec["encoder"]["output"]},
        "output": {"type": "tokens", "length": 1, "width": HIDDEN, "grid": [1, 1, 1]},
    }
    st = trainer(tmp_path, info, [{"name": "x", "train": ["encoder", "projector"], "steps": 1, "lr": 1e-3}], spec=spec).run()
    assert st["state"] == "error" and "frozen encoder" in st["message"]


def test_samples_json_errors_name_the_file_and_sample(tmp_path):
    (tmp_path / "samples.json").write_text(json.dumps([{"id": "a", "image": "v/a", "prompt": "p"}]))
    with pytest.raises(Exception, match="answer") as info:
        ReportData(tmp_path)
    assert "samples.json [0]" in str(getattr(info.value, "where", ""))


def test_learning_rate_warms_up_then_decays():
    assert lr_at(0, 10, 1.0, 0.2, "cosine") == pytest.approx(0.5)
    assert lr_at(1, 10, 1.0, 0.2, "cosine") == pytest.approx(1.0)
    assert lr_at(9, 10, 1.0, 0.2, "cosine") < 0.05
    assert lr_at(5, 10, 1.0, 0.0, "constant") == 1.0


def test_option_log_likelihoods_sum_the_answer_tokens(tiny_lms):
    lm = CausalLM(lm_options(tiny_lms("qwen2")))
    img = torch.randn(1, 2, HIDDEN)
    prompt = "describe . choices : A . cyst B . stone"
    scores = lm.option_log_likelihoods(prompt, ["A", "B"], img)
    enc = lm.encode_sample(2, prompt, "B", 64)
    batch = lm.collate([enc])
    with torch.no_grad():
        logp = torch.log_softmax(lm(batch["input_ids"], batch["attention_mask"], img).float(), dim=-1)[0]
    manual = sum(float(logp[t - 1, enc.ids[t]]) for t, lab in enumerate(enc.labels) if lab != IGNORE)
    assert scores[1] == pytest.approx(manual, abs=1e-4) and len(scores) == 2 and scores[0] != scores[1]


def test_bf16_autocast_trains_on_cpu(tiny_lms, tmp_path):
    info = tiny_lms("llama")
    t = trainer(tmp_path, info, [{"name": "p", "train": ["projector", "lora"], "steps": 2, "lr": 1e-3}], precision="bf16")
    st = t.run()
    assert st["state"] == "done", st.get("traceback")
    assert st["amp"] == "bfloat16" and math_finite(st["loss"])


def test_gradient_checkpointing_gives_the_same_step(tiny_lms, tmp_path):
    info = tiny_lms("llama")
    stages = [{"name": "p", "train": ["projector", "lora"], "steps": 1, "lr": 1e-3}]
    plain = trainer(tmp_path, info, stages, run="plain")
    ckpt = trainer(tmp_path, info, stages, run="ckpt", gradientCheckpointing=True)
    a, b = plain.run(), ckpt.run()
    assert a["state"] == b["state"] == "done", b.get("traceback")
    base = ckpt.model.lm.model.get_base_model()
    assert base.is_gradient_checkpointing
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    grads = [(p.grad, q.grad) for p, q in zip(plain.model.projector.parameters(), ckpt.model.projector.parameters())]
    assert all(torch.allclose(g, h, rtol=1e-4, atol=1e-7) for g, h in grads)


def test_the_papers_groups_train_the_vit_projector_lora_and_embeddings(tiny_lms, tmp_path):
    info = tiny_lms("llama3")
    spec = spec_for(info, encoder_trainable=True)
    t = trainer(tmp_path, info, [{"name": "lora", "train": ["encoder", "projector", "lora", "embeddings"], "steps": 1, "lr": 1e-3}], spec=spec)
    st = t.run()
    assert st["state"] == "done", st.get("traceback")
    assert not t.cache_features  # a trained encoder sees the volumes every step
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    assert any(k.startswith("encoder.blocks.0.") for k in saved)
    assert any("embed_tokens" in k for k in saved) and any("lm_head" in k for k in saved)  # untied: both saved
    assert not any(k.endswith("q_proj.base_layer.weight") for k in saved)  # the frozen decoder weights are not


def test_new_tokens_group_trains_only_the_added_rows(tiny_lms):
    lm = CausalLM(lm_options(tiny_lms("phi3")))
    lm.set_trainable({"new-tokens"})
    enc = lm.encode_sample(0, "describe", "the liver", 32)
    ids = torch.tensor([enc.ids + [lm.image_id]])
    logits = lm(ids, torch.ones_like(ids))
    logits.float().pow(2).mean().backward()
    for p in lm.embedding_params():
        nonzero = torch.nonzero(p.grad.abs().sum(dim=1)).flatten().tolist()
        assert nonzero == [lm.image_id]
    assert all(p.grad is None for p in lm.lora_params())


def test_frozen_llm_weights_in_bf16_with_float32_trainables(tiny_lms, tmp_path):
    info = tiny_lms("qwen2")
    t = trainer(tmp_path, info, [{"name": "p", "train": ["projector", "lora", "embeddings"], "steps": 2, "lr": 1e-3}], options={"llmDtype": "bfloat16"}, precision="bf16")
    st = t.run()
    assert st["state"] == "done", st.get("traceback")
    params = dict(t.model.lm.model.named_parameters())
    base = [p for n, p in params.items() if n.endswith("q_proj.base_layer.weight")]
    assert base and all(p.dtype == torch.bfloat16 for p in base)
    assert all(p.dtype == torch.float32 for p in t.model.lm.lora_params() + t.model.lm.embedding_params())
    assert json.loads((tmp_path / "run" / "spec.json").read_text())["llm"]["options"].get("loadDtype") is None


def test_a_config_without_the_schema_filled_keys_is_refused_naming_them(tiny_lms, tmp_path):
    cfg = config_for([{"name": "p", "train": ["projector"], "steps": 1, "lr": 1e-3}])
    del cfg["train"]["warmup"], cfg["generate"]["topP"]
    from llmed.report import report_sections

    with pytest.raises(Exception, match=r"train\.warmup missing"):
        report_sections(cfg)
    cfg["train"]["warmup"] = 0.1
    with pytest.raises(Exception, match=r"generate\.topP missing"):
        report_sections(cfg)


def test_a_thread_count_request_is_taken_up_before_a_step(tiny_lms, tmp_path):
    info = tiny_lms("llama")
    t = trainer(tmp_path, info, [{"name": "p", "train": ["projector"], "steps": 2, "lr": 1e-3}])
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2  # any count but the current one, so that the change shows as an event
    t.set_threads(wanted)
    try:
        assert t.run()["state"] == "done"
    finally:
        torch.set_num_threads(before)
    changes = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"threads"' in line]
    assert [c["threads"] for c in changes if c["event"] == "threads"] == [wanted]
