"""An LLM family as a whole causal language model, for report generation.

``CausalLM(options, workspace_root)`` builds, from a local Hugging Face checkpoint folder and with
transformers' Auto classes (no family table here: the family's facts — accepted ``model_type`` values, its
end-of-text token — arrive in ``options``, filled by the TypeScript side's causal-LM facet):

* the decoder with embeddings, every layer, final norm and LM head, loaded strictly (missing, unexpected
  and mis-shaped tensors are an error naming them);
* the tokenizer, with the image placeholder (``options.imageToken``, ``<im_patch>``) added as **one**
  special token (spec §3.11 item 2); a row for it is added to the embeddings when the checkpoint has no
  spare row, and its input (and untied output) row is set to the mean of the tokenizer's original rows
  (M3D, spec §3.3);
* the end-of-text id: ``options.endOfText`` when given (Llama-3 base: ``<|end_of_text|>``, M3D's fix,
  spec §3.11 item 4), else the tokenizer's eos; padding uses the pad token, else end-of-text;
* LoRA through peft (defaults r 16, α 32, dropout 0.05, ``all-linear`` = every linear projection of the
  decoder, not the LM head), base weights frozen.

Options are read as the causal-LM facet filled them (its schema is the one home of their defaults).

Sequences: :meth:`encode_sample` lays out ``[prefix specials] [image placeholders × N] prompt " " answer
[end-of-text]`` with labels −100 everywhere but the answer and the end-of-text token; :meth:`collate` pads
on the **right** for training (spec §3.11 item 3); :meth:`generate` pads the prompts on the **left**, so
every sequence's last prompt token is at the same column, and decodes greedily (or samples with a seed)
until every sequence has produced end-of-text or ``max_new_tokens``. The image features replace the
placeholder embeddings wherever the placeholder id stands (the count is checked per sequence).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

IGNORE = -100


class CausalLMError(ValueError):
    kind = "checkpoint"

    def __init__(self, message: str, where: str | None = None, hint: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.where, self.hint = where, hint
        if kind:
            self.kind = kind


@dataclass
class Encoded:
    ids: list[int]
    labels: list[int]
    truncated: bool


def _folder(checkpoint: str, workspace_root: str | os.PathLike | None) -> Path:
    path = Path(os.path.expanduser(checkpoint))
    if not path.is_absolute():
        path = Path(workspace_root or os.getcwd()) / path
    return path


def load_tokenizer(options: dict, folder: Path):
    """The checkpoint's tokenizer with the image token added; returns (tokenizer, image id, end-of-text id,
    pad id, size before the addition). Reads no weights (``llmed config check`` uses it)."""
    from transformers import AddedToken, AutoTokenizer

    try:
        # tokenizer.json is the tokenizer itself (the Rust tokenizers file, which Node's tokenizer reads too):
        # load it as written rather than letting a family class rebuild it from its vocabulary.
        if (folder / "tokenizer.json").is_file():
            from transformers import PreTrainedTokenizerFast

            tok = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:
        raise CausalLMError(
            f"cannot load the tokenizer: {type(err).__name__}: {err}", where=str(folder), hint="the folder needs tokenizer.json (or tokenizer.model) and tokenizer_config.json"
        ) from None
    # --- tokenizer: one special image token, end-of-text, padding -------------------------------
    old_len = len(tok)
    image_token = str(options["imageToken"])
    tok.add_tokens([AddedToken(image_token, special=True, normalized=False)], special_tokens=True)
    image_id = int(tok.convert_tokens_to_ids(image_token))
    if tok(image_token, add_special_tokens=False)["input_ids"] != [image_id]:
        raise CausalLMError(f"{image_token} does not tokenise as one token", where=str(folder))
    eot = options["endOfText"]
    if eot:
        eot_id = tok.convert_tokens_to_ids(eot)
        if eot_id is None or eot_id == tok.unk_token_id or tok.convert_ids_to_tokens(eot_id) != eot:
            raise CausalLMError(f"endOfText {eot!r} is not a token of this tokenizer", where=str(folder), kind="config")
        eot_id = int(eot_id)
    elif tok.eos_token_id is not None:
        eot_id = int(tok.eos_token_id)
    else:
        raise CausalLMError("the tokenizer has no eos token; set model.llm.with.endOfText", where=str(folder), kind="config")
    pad_id = int(tok.pad_token_id) if tok.pad_token_id is not None else eot_id

    return tok, image_id, eot_id, pad_id, old_len


class CausalLM(nn.Module):
    def __init__(self, options: dict, workspace_root: str | os.PathLike | None = None):
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM

        self.options = dict(options)
        folder = _folder(str(options["checkpoint"]), workspace_root)
        self.folder = folder
        if not (folder / "config.json").is_file():
            raise CausalLMError("checkpoint folder has no config.json", where=str(folder), hint="put the Hugging Face checkpoint (config.json, *.safetensors, tokenizer files) there")
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        family = options.get("family") or {}
        types = list(family.get("modelTypes") or [])
        if types and config.model_type not in types:
            raise CausalLMError(f"model_type {config.model_type!r} is not a {family.get('title', family.get('id', ''))} model ({', '.join(types)})", where=str(folder / "config.json"), kind="config")
        if int(options["hiddenSize"]) != int(config.hidden_size):
            raise CausalLMError(f"hiddenSize {options['hiddenSize']} does not match the checkpoint's hidden_size {config.hidden_size}", where=str(folder / "config.json"), kind="shape")
        # loadDtype (set by the report trainer, not a config option): bfloat16 halves an 8 B model's memory on a GPU
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[str(options.get("loadDtype", "float32"))]
        if options["init"] == "pretrained":
            model, info = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=dtype, output_loading_info=True)
            problems = []
            for what in ("missing_keys", "unexpected_keys", "mismatched_keys"):
                keys = sorted(str(k) for k in (info.get(what) or []))
                if keys:
                    problems.append(f"{what.replace('_', ' ')}: {', '.join(keys)}")
            if problems:
                raise CausalLMError("checkpoint does not load strictly: " + "; ".join(problems), where=str(folder))
        else:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        model.config.use_cache = False

        tok, self.image_id, self.eot_id, self.pad_id, old_len = load_tokenizer(options, folder)
        self.tokenizer = tok

        rows = model.get_input_embeddings().weight.shape[0]
        if self.image_id >= rows:
            model.resize_token_embeddings(self.image_id + 1, mean_resizing=False)
        self.old_rows = min(old_len, rows)
        self.new_ids = [self.image_id]
        with torch.no_grad():
            emb = model.get_input_embeddings().weight
            emb[self.new_ids] = emb[: self.old_rows].mean(dim=0, keepdim=True)
            out = model.get_output_embeddings()
            if out is not None and out.weight is not emb:
                out.weight[self.new_ids] = out.weight[: self.old_rows].mean(dim=0, keepdim=True)
        self.tied = model.get_output_embeddings() is None or model.get_output_embeddings().weight is model.get_input_embeddings().weight

        model.requires_grad_(False)
        lora = options["lora"]
        if lora:
            from peft import LoraConfig, get_peft_model

            targets = lora["targets"]
            cfg = LoraConfig(
                r=int(lora["rank"]),
                lora_alpha=float(lora["alpha"]),
                lora_dropout=float(lora["dropout"]),
                bias="none",
                task_type="CAUSAL_LM",
                target_modules=targets if targets == "all-linear" else list(targets),
            )
            model = get_peft_model(model, cfg)
        self.model = model
        self.hidden_size = int(config.hidden_size)
        self._new_row_hooks: list[Any] = []

    # ---- trainable groups --------------------------------------------------------------------------

    def embedding_params(self) -> list[nn.Parameter]:
        params = [self.model.get_input_embeddings().weight]
        out = self.model.get_output_embeddings()
        if out is not None and out.weight is not params[0]:
            params.append(out.weight)
        return params

    def lora_params(self) -> list[nn.Parameter]:
        return [p for n, p in self.model.named_parameters() if "lora_" in n]

    def set_trainable(self, groups: set[str]) -> None:
        """'lora', 'embeddings' (whole input rows + LM head) or 'new-tokens' (only the added rows learn)."""
        for h in self._new_row_hooks:
            h.remove()
        self._new_row_hooks = []
        for p in self.model.parameters():
            p.requires_grad_(False)
        for p in self.lora_params():
            p.requires_grad_("lora" in groups)
        if "embeddings" in groups or "new-tokens" in groups:
            for p in self.embedding_params():
                p.requires_grad_(True)
                if "embeddings" not in groups:
                    mask = torch.zeros(p.shape[0], 1, dtype=p.dtype, device=p.device)
                    mask[self.new_ids] = 1
                    self._new_row_hooks.append(p.register_hook(lambda g, m=mask: g * m.to(g.device, g.dtype)))

    def gradient_checkpointing(self) -> None:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # ---- sequences ---------------------------------------------------------------------------------

    def _prefix(self) -> list[int]:
        """The special tokens the tokenizer puts in front of a text (BOS for LLaMA; none for Qwen2)."""
        probe = "report"
        with_sp = self.tokenizer(probe, add_special_tokens=True)["input_ids"]
        without = self.tokenizer(probe, add_special_tokens=False)["input_ids"]
        for start in range(len(with_sp) - len(without) + 1):
            if with_sp[start : start + len(without)] == without:
                return list(with_sp[:start])
        return []

    def encode_sample(self, image_tokens: int, prompt: str, answer: str | None, max_length: int) -> Encoded:
        prefix = self._prefix()
        question = prefix + [self.image_id] * image_tokens + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(question) >= max_length:
            raise CausalLMError(
                f"image tokens ({image_tokens}) and prompt take {len(question)} tokens, not fewer than maxLength {max_length}",
                kind="config",
                where="train.maxLength",
                hint="raise train.maxLength or use fewer image tokens",
            )
        if answer is None:
            return Encoded(question, [IGNORE] * len(question), False)
        ans = self.tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"] + [self.eot_id]
        room = max_length - len(question)
        truncated = len(ans) > room
        ans = ans[:room]
        return Encoded(question + ans, [IGNORE] * len(question) + ans, truncated)

    def collate(self, samples: list[Encoded], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Right padding (training): real tokens first, then pad; labels −100 on the pads."""
        width = max(len(s.ids) for s in samples)
        ids = torch.full((len(samples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(samples), width), dtype=torch.long)
        for r, s in enumerate(samples):
            n = len(s.ids)
            ids[r, :n] = torch.tensor(s.ids)
            labels[r, :n] = torch.tensor(s.labels)
            mask[r, :n] = 1
        return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}

    def embed(self, input_ids: torch.Tensor, image_tokens: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the image features in place of the placeholders (row r gets image_tokens[r])."""
        emb = self.model.get_input_embeddings()(input_ids)
        if image_tokens is None:
            return emb
        where = input_ids == self.image_id
        counts = where.sum(dim=1)
        if bool((counts != image_tokens.shape[1]).any()):
            raise CausalLMError(f"sequences hold {counts.tolist()} image placeholders, but {image_tokens.shape[1]} image tokens came from the projector", kind="shape")
        emb = emb.clone()
        emb[where] = image_tokens.reshape(-1, image_tokens.shape[-1]).to(emb.dtype)
        return emb

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_tokens: torch.Tensor | None = None, logits_at: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, T, V); with ``logits_at`` (N, T) bool, only at its True positions, flattened row by row
        to (K, V): the LM head and its log-softmax skip the prompt, image and pad positions."""
        embeds = self.embed(input_ids, image_tokens)
        positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        extra = {} if logits_at is None else {"logits_to_keep": logits_at}
        return self.model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions, use_cache=False, **extra).logits

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        image_tokens: torch.Tensor | None,
        *,
        max_new_tokens: int = 256,
        strategy: str = "greedy",
        temperature: float = 1.0,
        top_p: float = 0.9,
        seed: int = 0,
        max_length: int = 4096,
    ) -> list[dict]:
        """Left-padded batched decoding. Returns per prompt ``{"ids", "text", "stopped"}`` (stopped: ended on
        end-of-text rather than on max_new_tokens)."""
        n_img = 0 if image_tokens is None else int(image_tokens.shape[1])
        encoded = [self.encode_sample(n_img, p, None, max_length) for p in prompts]
        device = self.model.get_input_embeddings().weight.device
        width = max(len(e.ids) for e in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(encoded), width), dtype=torch.long, device=device)
        for r, e in enumerate(encoded):
            ids[r, width - len(e.ids) :] = torch.tensor(e.ids, device=device)
            mask[r, width - len(e.ids) :] = 1
        embeds = self.embed(ids, None if image_tokens is None else image_tokens.to(device))
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = self.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1].float()
        produced: list[list[int]] = [[] for _ in encoded]
        done = torch.zeros(len(encoded), dtype=torch.bool, device=device)
        stopped = [False] * len(encoded)
        last_pos = positions[:, -1]
        for _ in range(int(max_new_tokens)):
            if strategy == "greedy":
                nxt = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(logits / float(temperature), dim=-1).cpu()
                sorted_p, order = probs.sort(dim=-1, descending=True)
                keep = sorted_p.cumsum(dim=-1) - sorted_p < float(top_p)
                sorted_p = sorted_p * keep
                pick = torch.multinomial(sorted_p / sorted_p.sum(dim=-1, keepdim=True), 1, generator=generator)
                nxt = order.gather(1, pick).squeeze(1).to(device)
            for r in range(len(encoded)):
                if done[r]:
                    continue
                if int(nxt[r]) == self.eot_id:
                    done[r] = True
                    stopped[r] = True
                else:
                    produced[r].append(int(nxt[r]))
            if bool(done.all()):
                break
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            mask = torch.cat([mask, (~done).long().unsqueeze(1)], dim=1)
            last_pos = last_pos + 1
            step_embeds = self.model.get_input_embeddings()(nxt.unsqueeze(1))
            out = self.model(inputs_embeds=step_embeds, attention_mask=mask, position_ids=last_pos.unsqueeze(1), past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1].float()
        return [{"ids": p, "text": self.tokenizer.decode(p, skip_special_tokens=True).strip(), "stopped": s} for p, s in zip(produced, stopped)]

    @torch.no_grad()
    def option_log_likelihoods(self, prompt: str, options: list[str], image_tokens: torch.Tensor | None, max_length: int = 4096) -> list[float]:
        """VQA by likelihood: the summed log-probability of each option's tokens after the prompt."""
        n_img = 0 if image_tokens is None else int(image_tokens.shape[1])
        samples = [self.encode_sample(n_img, prompt, opt, max_length) for opt in options]
        batch = self.collate(samples, self.model.get_input_embeddings().weight.device)
        imgs = None if image_tokens is None else image_tokens.expand(len(options), -1, -1)
        logits = self.forward(batch["input_ids"], batch["attention_mask"], imgs).float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = batch["labels"][:, 1:]
        picked = logp.gather(2, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (target != IGNORE)
        return [float(v) for v in picked.sum(dim=1)]
