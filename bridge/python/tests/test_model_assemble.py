"""llmed.assemble: ModelSpec → model + loss; sharing, cascade freezing, family swap, training signal."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

from fixtures import make_spec
from llmed.assemble import CASCADE_SCHEDULES, SpecError, build_loss, build_model, cascade_schedule
from llmed.losses import weighted_scales

DEMO_SPEC = "docs/example-model-spec.json"


@pytest.fixture(scope="module")
def smol_like(tiny_checkpoint):
    """A 2-layer checkpoint with SmolLM2-135M's layer shapes (hidden 576, 9 heads, 3 KV heads, MLP 1536)."""
    return tiny_checkpoint("llama3", hidden=576, layers=2, heads=9, kv_heads=3, intermediate=1536)


def demo_spec(plugins_dir, checkpoint):
    spec = json.loads((plugins_dir.parent / DEMO_SPEC).read_text())
    for node in [spec["encoder"], spec["tokens"], *spec["block"], spec["stageAdapters"], spec["decoder"], *spec["losses"]]:
        node["python"]["root"] = str(plugins_dir / node["id"] / "python")  # the spec names <workspace>/plugins/...
        if node["kind"] == "LLMBackbone":
            node["options"].update(checkpoint=str(checkpoint), layers=[1], numLayers=2)
    return spec


def pair(spec, seed=0):
    g = torch.Generator().manual_seed(seed)
    i, j, k = spec["input"]["spatial"]
    fixed = torch.rand(1, 1, k, j, i, generator=g)
    moving = torch.roll(fixed, shifts=(1, -1, 2), dims=(2, 3, 4))
    return moving, fixed


def test_demo_spec_forward_backward_and_parameter_counts(plugins_dir, smol_like):
    spec = demo_spec(plugins_dir, smol_like)
    torch.manual_seed(0)
    model = build_model(spec)
    loss_fn = build_loss(spec)
    moving, fixed = pair(spec)
    out = model(moving, fixed)
    # docs/example-model-spec.json is the demo's spec as composed now (48×64×48, 36 tokens)
    assert [tuple(f.shape) for f in out["fields"]] == [(1, 3, 12, 16, 12), (1, 3, 24, 32, 24), (1, 3, 48, 64, 48)]
    assert [tuple(w.shape) for w in out["warped"]] == [(1, 1, 12, 16, 12), (1, 1, 24, 32, 24), (1, 1, 48, 64, 48)]
    assert out["steps"] == 1
    total, terms = loss_fn(out, {"moving": moving, "fixed": fixed})
    assert set(terms) == {"mse", "diffusion", "total"}
    assert terms["total"] == pytest.approx(terms["mse"] + 0.04 * terms["diffusion"], rel=1e-5)
    total.backward()
    # the one LLM layer is applied twice (sharesWith) and is frozen; everything else learns
    assert model._plan[1] == model._plan[3] == ("llm", "llm")
    assert all(p.grad is None for p in model.llm.parameters())
    assert model.branches[0]["tokens"].position_embedding.grad is not None
    assert model.encoder.moving_stream.levels[0][0].weight.grad is not None

    d = model.describe()
    by_path = {r["path"]: r for r in d["nodes"]}
    # SmolLM2-shaped layer: q,o 576², k,v 576·192, MLP 3·576·1536, two norms — plus the ones-weight final norm
    llm_params = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576 + 576
    assert by_path["model.block[1]"]["frozen"] == llm_params == 3_540_672
    assert by_path["model.block[3]"]["total"] == 0 and by_path["model.block[3]"]["sharesWith"] == "model.block[1]"
    assert d["frozen"] == llm_params
    # (36 position embeddings of width 64; the stale 80-token spec had 44 more: 2,816 parameters)
    assert d["total"] == sum(r["total"] for r in d["nodes"]) == 7_412_989
    assert d["trainable"] == 3_872_317
    assert model.forward_field(moving, fixed).shape == (1, 3, 48, 64, 48)


@pytest.mark.parametrize("family", ["llama2", "phi3", "qwen2"])
def test_swapping_the_family_is_a_one_word_change(family, plugins_dir, tiny_checkpoint):
    spec = make_spec(plugins_dir, tiny_checkpoint(family), family=family)
    assert spec["block"][1]["id"] == family
    model = build_model(spec)
    moving, fixed = pair(spec)
    total, _ = build_loss(spec)(model(moving, fixed), {"moving": moving, "fixed": fixed})
    total.backward()
    assert type(model.llm["llm"].layers[0]).__name__.lower().startswith(family.rstrip("23"))
    assert any(p.grad is not None for p in model.decoder.parameters())


def test_optimisation_steps_lower_the_loss_on_a_fixed_pair(plugins_dir, tiny_checkpoint):
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"))
    torch.manual_seed(0)
    model, loss_fn = build_model(spec), build_loss(spec)
    moving, fixed = pair(spec)
    batch = {"moving": moving, "fixed": fixed}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    llm_before = {n: p.detach().clone() for n, p in model.llm.named_parameters()}
    losses = []
    for _ in range(4):
        opt.zero_grad()
        total, _ = loss_fn(model(moving, fixed), batch)
        total.backward()
        opt.step()
        losses.append(total.item())
    with torch.no_grad():
        losses.append(loss_fn(model(moving, fixed), batch)[0].item())
    assert losses[-1] < losses[0], losses
    assert all(torch.equal(p, llm_before[n]) for n, p in model.llm.named_parameters())


def _grads(model):
    return {n for n, p in model.named_parameters() if p.grad is not None and torch.any(p.grad != 0)}


def test_cascade_shares_encoder_and_llm_and_freezes_step_by_step(plugins_dir, tiny_checkpoint):
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"), decoder="cascade", steps=3)
    torch.manual_seed(0)
    model = build_model(spec)
    assert model.n_steps == 3 and len(model.branches) == 3 and len(model.llm) == 1
    pos = [b["tokens"].position_embedding for b in model.branches]
    assert len({id(p) for p in pos}) == 3  # every step has its own position embedding
    moving, fixed = pair(spec)
    loss_fn = build_loss(spec)

    def train_signal(step, schedule="stepwise"):
        groups = model.freeze_for_step(step, schedule)
        model.zero_grad(set_to_none=True)
        out = model(moving, fixed)
        loss_fn(out, {"moving": moving, "fixed": fixed})[0].backward()
        return groups, out["steps"], _grads(model), {n for n, p in model.named_parameters() if p.requires_grad}

    groups, steps, grads, trainable = train_signal(1)
    assert groups == ["encoder", "llm", "step1"] and steps == 1
    assert any(n.startswith("encoder.") for n in grads) and any(n.startswith("branches.0.") for n in grads)
    assert not any(n.startswith(("branches.1.", "branches.2.", "decoder.decoders.1.", "llm.")) for n in trainable)

    groups, steps, grads, trainable = train_signal(2)
    assert groups == ["step1", "step2"] and steps == 2
    assert not any(n.startswith(("encoder.", "llm.", "branches.2.", "decoder.decoders.2.")) for n in trainable)
    assert any(n.startswith("branches.0.") for n in grads) and any(n.startswith("decoder.decoders.1.") for n in grads)
    assert grads <= trainable

    groups, steps, grads, trainable = train_signal(3)
    assert groups == ["step3"] and steps == 3
    assert trainable and all(n.startswith(("branches.2.", "decoder.decoders.2.")) for n in trainable)
    assert grads <= trainable and any(n.startswith("decoder.decoders.2.") for n in grads)

    groups, steps, grads, trainable = train_signal(2, "joint")
    assert groups == ["step1", "step2", "step3"] and steps == 3
    assert not any(n.startswith(("encoder.", "llm.")) for n in trainable)
    assert any(n.startswith("branches.0.") for n in grads) and any(n.startswith("decoder.decoders.2.") for n in grads)
    # a frozen LLM base never becomes trainable, whatever the phase
    model.freeze_for_step(1, "step-by-step")
    assert not any(p.requires_grad for p in model.llm.parameters())


def test_cascade_schedules_are_the_schemas_and_the_old_spelling_still_reads(plugins_dir, tiny_checkpoint):
    # The experiment schema (packages/core/src/config.ts) is where the schedules are named.
    config_ts = (plugins_dir.parent / "packages" / "core" / "src" / "config.ts").read_text()
    match = re.search(r"schedule: \{ enum: \[([^\]]*)\] \}", config_ts)
    assert match, "train.cascade.schedule's enum not found in packages/core/src/config.ts"
    assert tuple(re.findall(r"'([^']+)'", match.group(1))) == CASCADE_SCHEDULES
    model = build_model(make_spec(plugins_dir, tiny_checkpoint("llama3"), decoder="cascade", steps=2))
    for step in (1, 2):
        assert model.trainable_groups(step) == model.trainable_groups(step, "step-by-step") == model.trainable_groups(step, "stepwise")
    assert model.trainable_groups(2, "joint") == ["step1", "step2"] and model.steps_run(2, "joint") == 2
    assert cascade_schedule("stepwise") == "step-by-step" and cascade_schedule("joint") == "joint"
    with pytest.raises(SpecError) as err:
        model.freeze_for_step(1, "all-at-once")
    # the error names the values the schema accepts, and is a config error at the config path
    assert "'step-by-step' or 'joint'" in str(err.value) and "stepwise" not in str(err.value)
    assert err.value.kind == "config" and err.value.where == "train.cascade.schedule"


def test_cascade_steps_superpose_fields(plugins_dir, tiny_checkpoint):
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"), decoder="cascade", steps=2)
    torch.manual_seed(0)
    model = build_model(spec)
    moving, fixed = pair(spec)
    with torch.no_grad():
        for head in list(model.decoder.decoders[1].flow)[1:]:
            head[-1].weight.zero_()
            head[-1].bias.fill_(0.25)
        model.freeze_for_step(1)
        one = model(moving, fixed)["fields"]
        model.freeze_for_step(2)
        two = model(moving, fixed)["fields"]
    for a, b in zip(one, two):
        assert torch.allclose(b, a + 0.25, atol=1e-6)


def test_llm_morph_style_with_lora_dice_and_ncc(plugins_dir, tiny_checkpoint):
    spec = make_spec(
        plugins_dir,
        tiny_checkpoint("llama3"),
        style="llm-morph",
        llm_layers=(0, 1),
        lora={"rank": 4, "alpha": 4, "dropout": 0.0, "targets": ["q_proj", "k_proj", "v_proj"]},
        final_norm="none",
        position_embedding=False,
        losses=(("dice-loss", 1.0, {"ignore": [0], "scaleWeights": [1]}), ("ncc", 0.5, {"window": 3}), ("diffusion", 0.1, {"scaleWeights": [1]})),
    )
    torch.manual_seed(0)
    model = build_model(spec)
    assert set(model.llm) == {"leb1", "leb2"} and model.branches[0]["tokens"].position_embedding is None
    assert model.llm["leb1"].layer_indices == [0] and model.llm["leb2"].layer_indices == [1]
    llm_trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert llm_trainable and all("lora_" in n for n in llm_trainable)
    moving, fixed = pair(spec)
    seg = torch.zeros(1, 3, *moving.shape[2:])
    seg[:, 0] = 1
    seg[:, 0, 8:24, 8:24, 8:24] = 0
    seg[:, 1, 8:24, 8:24, 8:16] = 1
    seg[:, 2, 8:24, 8:24, 16:24] = 1
    total, terms = build_loss(spec)(model(moving, fixed), {"moving": moving, "fixed": fixed, "moving_labels": seg, "fixed_labels": torch.roll(seg, 1, dims=4)})
    assert set(terms) == {"dice-loss", "ncc", "diffusion", "total"}
    assert -1.0 <= terms["dice-loss"] < 0 and -1.0 <= terms["ncc"] <= 0
    total.backward()
    # LoRA B starts at zero, so in the first step only B receives gradient (A's gradient is B-weighted)
    assert any(p.grad is not None and "lora_B" in n for n, p in model.llm.named_parameters())


def test_vit_stand_in_trains_from_scratch(plugins_dir):
    spec = make_spec(plugins_dir, style="vit")
    model = build_model(spec)
    moving, fixed = pair(spec)
    build_loss(spec)(model(moving, fixed), {"moving": moving, "fixed": fixed})[0].backward()
    vit = model.llm["block1"]  # an LLMBackbone node: shared by cascade steps like an LLM, but trainable
    assert all(p.requires_grad and p.grad is not None for p in vit.parameters())


def test_spec_errors_are_clear(plugins_dir, tiny_checkpoint):
    spec = make_spec(plugins_dir, tiny_checkpoint("llama3"))
    bad = copy.deepcopy(spec)
    bad["block"][3]["sharesWith"] = "model.block[9]"
    with pytest.raises(SpecError, match=r"model\.block\[9\]"):
        build_model(bad)
    bad = copy.deepcopy(spec)
    bad["encoder"]["python"]["module"] = "llmed_no_such_plugin"
    with pytest.raises(SpecError, match="llmed_no_such_plugin"):
        build_model(bad)
    model = build_model(spec)
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32, 32\)"):
        model(torch.rand(1, 1, 32, 32, 16), torch.rand(1, 1, 32, 32, 16))


def test_relative_checkpoint_is_resolved_against_the_workspace_root(plugins_dir, tiny_checkpoint):
    folder = tiny_checkpoint("llama3")
    spec = make_spec(plugins_dir, folder.name)
    model = build_model(spec, workspace_root=folder.parent)
    assert model.llm["llm"].checkpoint == str(folder)


# ---------------------------------------------------------------------------------------------- losses


def test_scale_weights_pair_with_fields_from_the_fine_end():
    # The loss terms' own checks (local NCC, gradient penalty, soft Dice) moved with them to
    # plugins/ncc, plugins/diffusion and plugins/dice-loss (tests/test_*.py there).
    assert weighted_scales(3, [0.25, 0.5, 1]) == [(0, 0.25), (1, 0.5), (2, 1.0)]
    assert weighted_scales(3, [1]) == [(2, 1.0)]
    with pytest.raises(ValueError):
        weighted_scales(2, [1, 1, 1])


def test_mse_and_diffusion_combine_over_scales(plugins_dir):
    spec = make_spec(plugins_dir, style="vit")
    loss = build_loss(spec)
    fixed = torch.rand(1, 1, 16, 16, 16)
    fields = [torch.full((1, 3, 4, 4, 4), 0.1), torch.zeros(1, 3, 8, 8, 8), torch.zeros(1, 3, 16, 16, 16)]
    warped = [torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 1, 8, 8, 8), fixed.clone()]
    from llmed.nn import resize_image

    total, terms = loss({"fields": fields, "warped": warped}, {"moving": fixed, "fixed": fixed})
    expected_mse = 0.25 * resize_image(fixed, (4, 4, 4)).pow(2).mean() + 0.5 * resize_image(fixed, (8, 8, 8)).pow(2).mean()
    assert terms["mse"] == pytest.approx(expected_mse.item(), rel=1e-5)
    assert terms["diffusion"] == pytest.approx(0.0)
    assert total.item() == pytest.approx(terms["mse"], rel=1e-5)
