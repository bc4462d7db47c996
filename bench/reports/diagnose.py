"""Why does the report model ignore its image? Measurements for issue #13 (not a test; one thread).

    .venv/bin/python bench/reports/diagnose.py scales  --spec runs/report-proxy/<stamp>/spec.json
    .venv/bin/python bench/reports/diagnose.py train   --spec ... --steps 80 [--projector-norm none|feature-standardise]

``scales``: the frozen encoder's features (norms, how alike different scans are, how much of the variance is
between scans), the projected image tokens at initialisation against SmolLM2's token embeddings, and what
a linear read-out of the pooled features can tell about each fact (ridge, held out on the val split).

``train``: a short training loop over cached features (the trainer's own ReportModel, loss and feature
cache), reporting every few steps the held-out answer-token loss with each sample's own image tokens and
with another scan's ("image gain", nats/token: shuffled − matched; > 0 when the model reads the image).

Data: the prepared report-proxy stand-in (templated findings from segmentations of real scans —
pseudo-subjects of one CT, not radiologists' reports).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bridge/python"))

from llmed.report import ReportData, ReportModel, cached_features, encoder_feature_key  # noqa: E402
from llmed.train import lr_at  # noqa: E402

PLUGIN_MODULES = {"i3resnet152": "llmed_i3resnet152", "linear": "llmed_linear", "spatial-pooling": "llmed_spatial_pooling", "token-cross-entropy": "llmed_token_cross_entropy"}


def plugin_table() -> dict:
    return {pid: {"root": str(ROOT / "plugins" / pid / "python"), "module": mod, "factory": "build"} for pid, mod in PLUGIN_MODULES.items()}


class Features:
    """The trainer's feature cache (the same files, through llmed.report.cached_features), filled for any
    sample that lacks one."""

    def __init__(self, spec: dict, data: ReportData, encoder):
        self.dir = data.folder / "features" / encoder_feature_key(spec)
        self.data, self.encoder, self.mem = data, encoder, {}

    def __call__(self, s) -> torch.Tensor:
        if s.image not in self.mem:

            def encode() -> torch.Tensor:
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return self.encoder(self.data.volume(s).unsqueeze(0)).float()[0]

            self.mem[s.image] = cached_features(self.dir, s.image, encode)
        return self.mem[s.image]


def load(spec_file: str, projector_options: dict | None = None):
    spec = json.loads(Path(spec_file).read_text())
    if projector_options:
        spec["projector"]["options"].update(projector_options)
        if spec["projector"]["options"].get("tokens") == "mean":  # one pooled token
            spec["projector"]["output"] = {**spec["projector"]["output"], "length": 1, "grid": [1, 1, 1]}
    model = ReportModel(spec, ROOT, plugin_table())
    data = ReportData(ROOT / ".cache/prepared/report-proxy")
    return spec, model, data, Features(spec, data, model.encoder)


def cos_matrix(x: torch.Tensor) -> torch.Tensor:
    x = torch.nn.functional.normalize(x, dim=-1)
    return x @ x.T


def scales(args) -> dict:
    spec, model, data, feats = load(args.spec)
    train = [s for s in data.split("train", ["report"])]
    val = [s for s in data.split("val", ["report"])]

    # one sample per scan (the three regions share the image)
    def per_scan(xs):
        seen, out = set(), []
        for s in xs:
            if s.image not in seen:
                seen.add(s.image)
                out.append(s)
        return out

    tr, va = per_scan(train), per_scan(val)
    t0 = time.time()
    F = torch.stack([feats(s) for s in tr + va])  # (S, L, C)
    print(f"features of {len(tr) + len(va)} scans in {time.time() - t0:.1f} s", flush=True)
    S, L, C = F.shape
    tok = F.reshape(S * L, C)
    pooled = F.mean(1)
    out = {"scans": S, "tokens": L, "width": C}
    out["feature_token_norm_mean"] = float(tok.norm(dim=-1).mean())
    out["feature_value_mean"] = float(tok.mean())
    out["feature_fraction_zero"] = float((tok == 0).float().mean())
    # how alike are different scans at the same token position?
    cs = [cos_matrix(F[:, i]) for i in range(L)]
    off = torch.stack([c[~torch.eye(S, dtype=torch.bool)].mean() for c in cs])
    out["cross_scan_cosine_same_position"] = float(off.mean())
    # share of the per-channel variance that is between scans (after removing the per-position mean)
    centred = F - F.mean(0, keepdim=True)
    out["between_scan_std_over_mean_norm"] = float(centred.reshape(-1, C).norm(dim=-1).mean() / F.mean(0).norm(dim=-1).mean())
    # projected tokens at init vs the LLM's embedding rows
    emb = model.lm.model.get_input_embeddings().weight[: model.lm.old_rows].detach().float()
    with torch.no_grad():
        proj = model.projector(F[:64]).float()
    out["llm_embedding_row_norm_mean"] = float(emb.norm(dim=-1).mean())
    out["llm_embedding_value_rms"] = float(emb.pow(2).mean().sqrt())
    out["projected_token_norm_mean_at_init"] = float(proj.norm(dim=-1).mean())
    out["projected_token_norm_ratio"] = out["projected_token_norm_mean_at_init"] / out["llm_embedding_row_norm_mean"]
    pc = proj - proj.mean(0, keepdim=True)
    out["projected_between_scan_norm_at_init"] = float(pc.norm(dim=-1).mean())
    pcs = cos_matrix(proj.reshape(-1, proj.shape[1], proj.shape[2])[:, 0])
    out["projected_cross_scan_cosine_at_init"] = float(pcs[~torch.eye(pcs.shape[0], dtype=torch.bool)].mean())
    # linear read-out of the pooled features: ridge on standardised features, train scans → val scans
    facts = json.loads((ROOT / "runs/data/report-proxy/facts.json").read_text()) if (ROOT / "runs/data/report-proxy/facts.json").is_file() else None
    out["readout"] = readout(pooled, tr, va, facts) if facts else "no facts.json"
    return out


def scan_facts(facts, scan_id: str) -> dict:
    return facts["samples"].get(scan_id) or {}


def readout(pooled: torch.Tensor, tr, va, facts) -> dict:
    """Per binary fact (present in ≥ 10 % and ≤ 90 % of training scans): val accuracy of a ridge read-out vs
    the majority class."""

    def labels(s):
        e = scan_facts(facts, s.extra.get("scanId", s.id.rsplit("-", 1)[0]))
        fs = e.get("facts", e)
        out = set()
        for region in fs.values() if isinstance(fs, dict) else []:
            for f in region if isinstance(region, list) else []:
                c = f.get("category")
                if c == "phase":
                    out.add(f"phase:{f['phase']}")
                elif c in ("lesion", "stone", "enlargement"):
                    out.add(f"{c}:{f['organ']}")
                    out.add(f"any-{c}")
                elif c == "effusion":
                    out.add("effusion")
                elif c == "normal":
                    out.add(f"normal:{f['organ']}")
        return out

    ytr, yva = [labels(s) for s in tr], [labels(s) for s in va]
    keys = sorted({k for y in ytr for k in y})
    n = len(tr)
    X = pooled
    mu, sd = X[:n].mean(0), X[:n].std(0) + 1e-6
    Z = (X - mu) / sd
    Ztr, Zva = Z[:n], Z[n:]
    res = {}
    lam = 10.0 * Ztr.shape[0]
    A = Ztr.T @ Ztr + lam * torch.eye(Ztr.shape[1])
    for k in keys:
        y = torch.tensor([1.0 if k in t else 0.0 for t in ytr])
        p = y.mean()
        if not (0.1 <= p <= 0.9):
            continue
        w = torch.linalg.solve(A, Ztr.T @ (y - p))
        pred = (Zva @ w + p) > 0.5
        yv = torch.tensor([k in t for t in yva])
        res[k] = {"val_acc": round(float((pred == yv).float().mean()), 3), "majority": round(float(max(yv.float().mean(), 1 - yv.float().mean())), 3)}
    return res


def train(args) -> dict:
    torch.manual_seed(args.seed)
    popts = json.loads(args.projector) if args.projector else None
    spec, model, data, feats = load(args.spec, popts)
    train_s = data.split("train", ["report"])
    val_s = data.split("val", ["report"])[: args.val]
    lm = model.lm
    use_bf16 = not args.fp32

    def batch_of(samples, swap=None):
        enc = [lm.encode_sample(model.image_tokens, s.prompt, s.answer, 160) for s in samples]
        b = lm.collate(enc)
        src = samples if swap is None else swap
        b["features"] = torch.stack([feats(s) for s in src])
        return b

    # another scan of the same region, far in the list (never the sample's own image)
    def shuffled_of(xs):
        out = []
        for i, s in enumerate(xs):
            for d in range(len(xs) // 2, len(xs) + len(xs) // 2):
                o = xs[(i + d) % len(xs)]
                if o.image != s.image and o.region == s.region:
                    out.append(o)
                    break
            else:
                out.append(xs[(i + 1) % len(xs)])
        return out

    val_swap = shuffled_of(val_s)
    fit = {}
    if getattr(model.projector, "needs_fit", False):
        rms = float(lm.model.get_input_embeddings().weight[: lm.old_rows].detach().float().pow(2).mean().sqrt())
        fit = model.projector.fit_features(torch.stack([feats(s) for s in train_s]), target_rms=None if args.no_rescale else rms)
        print("fitted", fit, flush=True)

    @torch.no_grad()
    def held_out():
        model.eval()
        tot = {"matched": 0.0, "shuffled": 0.0}
        ntok = 0
        for i in range(0, len(val_s), 8):
            chunk, swap = val_s[i : i + 8], val_swap[i : i + 8]
            for name, sw in (("matched", None), ("shuffled", swap)):
                b = batch_of(chunk, sw)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                    logits = model(b, all_logits=True)["logits"]
                pred = logits[:, :-1].float()
                tgt = b["labels"][:, 1:]
                ce = torch.nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]), tgt.reshape(-1), ignore_index=-100, reduction="sum")
                tot[name] += float(ce)
            ntok += int((b["labels"][:, 1:] != -100).sum())
        model.train()
        return tot["matched"] / ntok, tot["shuffled"] / ntok

    stages = json.loads(args.stages)
    log = []
    step = 0
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    m, s_ = held_out()
    log.append({"step": 0, "matched": round(m, 4), "shuffled": round(s_, 4), "gain": round(s_ - m, 4)})
    print(json.dumps(log[-1]), flush=True)
    for st in stages:
        model.set_stage(st["train"])
        model.encoder.eval()
        groups = {}
        for n_, p in model.named_parameters():
            if p.requires_grad:
                key = "projector" if n_.startswith("projector.") else "lm"
                groups.setdefault(key, []).append(p)
        lr_proj = float(st.get("projectorLr", st["lr"]))
        opt = torch.optim.AdamW(
            [{"params": v, "lr": lr_proj if k == "projector" else float(st["lr"]), "base": lr_proj if k == "projector" else float(st["lr"])} for k, v in groups.items()], weight_decay=0.0
        )
        for i in range(int(st["steps"])):
            for gr in opt.param_groups:
                gr["lr"] = lr_at(i, int(st["steps"]), gr["base"], 0.05, "cosine")
            idx = torch.randint(len(train_s), (4,), generator=g).tolist()
            b = batch_of([train_s[j] for j in idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                out = model(b)
                loss, _ = model.loss(out, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % args.every == 0:
                m, s_ = held_out()
                tn = float(out["image_tokens"].detach().float().norm(dim=-1).mean())
                log.append(
                    {
                        "step": step,
                        "stage": st["name"],
                        "train_loss": round(float(loss), 4),
                        "matched": round(m, 4),
                        "shuffled": round(s_, 4),
                        "gain": round(s_ - m, 4),
                        "token_norm": round(tn, 3),
                        "s": round(time.time() - t0, 1),
                    }
                )
                print(json.dumps(log[-1]), flush=True)
    return {"projector": popts, "stages": stages, "log": log}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["scales", "train"])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--projector", default=None, help="JSON of projector options to override")
    ap.add_argument("--stages", default='[{"name":"align","train":["projector"],"steps":40,"lr":0.001},{"name":"lora","train":["projector","lora"],"steps":40,"lr":0.0003}]')
    ap.add_argument("--val", type=int, default=48)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--no-rescale", action="store_true", help="standardise without starting the tokens at the embeddings' scale")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = scales(args) if args.what == "scales" else train(args)
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
