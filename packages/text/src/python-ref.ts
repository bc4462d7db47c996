/**
 * Calls a text metric's Python reference (`plugins/<id>/python/<module>`: `reference(options, inputs) ->
 * dict[str, float]`, wrapping nltk / rouge-score / sacrebleu / pycocoevalcap) from TypeScript tests, so
 * the TypeScript implementation is compared with the reference library on inputs beyond the fixed cases.
 * One Python process per call list. Returns `skip` (a reason) when the venv or the library is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const VENV_PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python');

const SCRIPT = `
import importlib, json, math, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
try:
    m = importlib.import_module(sys.argv[3])
except ModuleNotFoundError as e:
    print(json.dumps({"skip": f"Python module {e.name} is not installed"}))
    sys.exit(0)
calls = json.load(sys.stdin)
clean = lambda d: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
out = {"defaults": getattr(m, "DEFAULTS", None), "results": [clean(m.reference(c["options"], c["inputs"])) for c in calls]}
print(json.dumps(out))
`;

export interface PythonReferenceRun {
  skip?: string;
  defaults?: Record<string, unknown> | null;
  results?: Record<string, number | null>[];
}

export function runPythonReference(pluginDir: string, module: string, calls: { options: object; inputs: object }[]): PythonReferenceRun {
  if (!existsSync(VENV_PYTHON)) return { skip: `${VENV_PYTHON} not found (npm run setup)` };
  const r = spawnSync(VENV_PYTHON, ['-c', SCRIPT, join(REPO_ROOT, 'bridge', 'python'), join(pluginDir, 'python'), module], {
    input: JSON.stringify(calls), encoding: 'utf8', maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`Python reference ${module} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as PythonReferenceRun;
}

/** Deterministic pseudo-reports from a small vocabulary, for reference comparisons on many inputs. */
export function randomReports(seed: number, count: number, vocabulary: readonly string[], minWords = 1, maxWords = 14): string[] {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: count }, () => {
    const n = minWords + Math.floor(rand() * (maxWords - minWords + 1));
    return Array.from({ length: n }, () => vocabulary[Math.floor(rand() * vocabulary.length)]).join(' ');
  });
}

/** A vocabulary of report words, with repeats so n-grams recur. */
export const REPORT_WORDS = ['the', 'liver', 'is', 'normal', 'in', 'size', 'a', 'small', 'hypodense', 'lesion', 'left', 'right', 'kidney', 'stone', 'no', 'pleural', 'effusion', 'mild', 'enlarged', 'spleen', 'of', 'cm', '2.5', 'and', 'with', 'lesions', 'kidneys', 'normally', 'seen', '.', ','];
