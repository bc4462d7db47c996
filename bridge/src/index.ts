/**
 * @llmed/bridge: TypeScript side of the TypeScript <-> Python bridge.
 *
 * - `PythonSession`: one Python process (pythonia), typed calls to `llmed.api`, crash detection;
 * - `trainRun`: start a training run in a Python thread, poll its progress, stop cleanly on Ctrl-C;
 * - `trainRunDistributed`: the same run on several processes / nodes under torchrun (DDP);
 * - the Python package itself lives in `bridge/python/llmed` (trainer, checkpoints, data, GGUF import).
 */
export { BRIDGE_PYTHON_ROOT, describePythoniaError, PythonBridgeError, PythonSession, resolvePythonBin, type CallOptions, type SessionOptions } from './session.ts';
export { pluginImportPaths, runTimestamp, specImportPaths, specPlugins, trainRun, type TrainResult, type TrainRunOptions } from './train.ts';
export { checkLaunch, jobFailure, parseTorchrunFailures, torchrunArguments, trainRunDistributed, type DistributedLaunch, type DistributedTrainOptions, type RankError, type TorchrunFailure } from './distributed.ts';
export type { BestMetric, DescribeModelResult, EnvironmentInfo, ParameterCounts, PythonFailure, StartTrainingResult, TrainState, TrainStatus } from './types.ts';
