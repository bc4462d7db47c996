/** Shapes of the results `llmed.api` (bridge/python/llmed/api.py) returns. Keys are as Python writes them. */

/** An `ok: false` result: what failed, as an llmed error kind (`nan` for a non-finite loss). */
export interface PythonFailure {
  kind: string;
  message: string;
  traceback?: string | null;
  where?: string | null;
  hint?: string | null;
}

export interface EnvironmentInfo {
  versions: Record<string, string | null>;
  executable: string;
  pid: number;
  cudaAvailable: boolean;
  cudaVersion: string | null;
  devices: string[];
  bf16: boolean;
  device: 'cuda' | 'cpu';
  threads: number;
}

export interface StartTrainingResult {
  runDir: string;
  pid: number;
}

export interface BestMetric {
  /** `dice` (mean validation Dice, higher is better) or `loss` (validation loss when pairs have no labels). */
  metric: 'dice' | 'loss';
  value: number;
  step: number;
  phase: number;
}

export type TrainState = 'starting' | 'running' | 'done' | 'stopped' | 'error';

/** Progress of a training run (Trainer.status() in train.py). */
export interface TrainStatus {
  state: TrainState;
  /** Completed steps (global, across cascade phases). */
  step: number;
  total: number;
  /** Cascade step being trained (1-based); 1 without a cascade. */
  phase: number;
  phases: number;
  loss: number | null;
  terms: Record<string, number>;
  it_s: number | null;
  eta_s: number | null;
  /** Mean Dice of the latest validation (null without labels or before the first validation). */
  val_dice: number | null;
  /** Mean Dice of the validation pairs before registration (zero field), computed once at step 0. */
  initial_dice?: number | null;
  best: BestMetric | null;
  elapsed_s: number;
  device: string | null;
  /** `bfloat16` / `float16` under CUDA AMP, null in fp32. */
  amp: string | null;
  run_dir: string;
  pid: number;
  /** Step the run started from (non-zero after a resume). */
  start_step: number;
  /** Why a run stopped: `requested` (Ctrl-C / stop()) or `time-budget`. */
  reason: string | null;
  message: string | null;
  kind: string | null;
  traceback: string | null;
  where?: string | null;
  hint?: string | null;
  /** Processes training together (1 without torchrun). */
  world_size?: number;
  /** Pairs per optimizer step over all processes: `train.batchSize` per process × world_size. */
  global_batch?: number;
  /** Under torchrun: the rank that wrote this status (always 0) and the process-group backend. */
  rank?: number;
  backend?: 'gloo' | 'nccl';
}

export interface ParameterCounts {
  total: number;
  trainable: number;
  frozen: number;
}

export interface DescribeModelResult {
  parameters: ParameterCounts;
  /** Counts per top-level module of the assembled model (encoder, llm, branches, decoder). */
  parts: Record<string, ParameterCounts>;
  buffers: number;
}
