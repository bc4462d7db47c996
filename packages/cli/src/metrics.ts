/** Metric ids → Metric plugins from the registry (`time` is measured, not a plugin). */
import { LlmedError, type Registry } from '@llmed/core';
import type { MetricRuntime } from '@llmed/imaging';
import { TIME_METRIC, type MetricPlugin } from '@llmed/runtime';

export const DEFAULT_METRICS = ['dice', 'hd95', 'jacobian-nonpositive', 'sdlogj', TIME_METRIC];

export function resolveMetrics(registry: Registry, ids: readonly string[], where: string): MetricPlugin[] {
  const out: MetricPlugin[] = [];
  for (const id of ids) {
    if (id === TIME_METRIC) continue; // measured by register / evaluate themselves
    const d = registry.get(id, 'Metric', where);
    const runtime = d.runtime as MetricRuntime | undefined;
    if (!runtime || typeof runtime.compute !== 'function') throw new LlmedError('plugin', `Metric plugin '${id}' has no runtime.compute`, { where: registry.sourceOf(id) });
    out.push({ id, runtime });
  }
  return out;
}

export function parseMetricList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const ids = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (ids.length === 0) throw new LlmedError('usage', '--metrics needs a comma-separated list of Metric plugin ids', { hint: 'llmed plugins list --kind Metric' });
  return ids;
}
