/**
 * `inspectVolume`: everything a person checks first about a NIfTI file — format, datatype, grid,
 * orientation, intensity range and percentiles, NaN/Inf count, and the label set when the file looks
 * like a label map (integer-valued with at most 1000 distinct values). `formatInspect` renders it.
 */
import { describeExtraDimensions, readNifti } from './nifti.ts';
import { axisCodes } from './orientation.ts';
import { finiteStats, percentiles } from './stats.ts';
import { uniqueLabels } from './labels.ts';
import type { Vec3 } from './affine.ts';

export interface InspectResult {
  file: string;
  format: 'NIfTI-1' | 'NIfTI-2';
  datatype: string;
  dims: Vec3;
  components: number;
  /** What the values beyond the spatial axes are ('3 frames (a 4-D series)', '3 components'). */
  extra?: string;
  spacing: Vec3;
  /** Axis code such as 'RAS' or 'LIA'. */
  orientation: string;
  affine: number[];
  /** Where the affine came from in the header. */
  affineSource: 'sform' | 'qform' | 'pixdim';
  intent: string;
  /** Statistics over the finite values (all components). */
  intensity: { min: number; max: number; mean: number; p1: number; p99: number; nonFinite: number };
  /** Distinct values, when all finite values are integers and there are at most 1000 of them. */
  labels?: number[];
}

const MAX_LABELS = 1000;

/** Read `file` and summarise it (see `InspectResult`). */
export async function inspectVolume(file: string): Promise<InspectResult> {
  const vol = await readNifti(file);
  const st = finiteStats(vol.data);
  const [p1, p99] = percentiles(vol.data, [1, 99]);
  const result: InspectResult = {
    file,
    format: vol.header.format,
    datatype: vol.header.datatype,
    dims: vol.dims,
    components: vol.components,
    extra: describeExtraDimensions(vol).text || undefined,
    spacing: vol.spacing,
    orientation: axisCodes(vol.affine),
    affine: vol.affine,
    affineSource: vol.header.affineSource,
    intent: vol.intent ?? 'NONE',
    intensity: { min: st.min, max: st.max, mean: st.mean, p1, p99, nonFinite: vol.nonFinite },
  };
  if (st.count > 0 && vol.nonFinite === 0 && isIntegerValued(vol.data)) {
    const labels = uniqueLabelsCapped(vol.data, MAX_LABELS);
    if (labels) result.labels = labels;
  }
  return result;
}

function isIntegerValued(d: Float32Array): boolean {
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v !== Math.floor(v)) return false;
  }
  return true;
}

/** Distinct values if there are at most `cap` of them (presence table over the integer range). */
function uniqueLabelsCapped(d: Float32Array, cap: number): number[] | undefined {
  const labels = uniqueLabels({ data: d });
  return labels.length <= cap ? labels : undefined;
}

const num = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 1000 || Math.abs(v) < 0.01 ? v.toExponential(3) : v.toFixed(3));

/** Readable multi-line text for an `inspectVolume` result. */
export function formatInspect(r: InspectResult): string {
  const a = r.affine;
  const row = (i: number) => `    [${[a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]].map((v) => v.toFixed(4).padStart(11)).join(' ')} ]`;
  const lines = [
    `${r.file}`,
    `  format       ${r.format}, ${r.datatype}${r.intent !== 'NONE' ? `, intent ${r.intent}` : ''}`,
    `  dims         ${r.dims.join(' x ')}${r.components > 1 ? ` x ${r.extra ?? `${r.components} components`}` : ''}`,
    `  spacing      ${r.spacing.map((s) => +s.toFixed(4)).join(' x ')} mm`,
    `  orientation  ${r.orientation} (affine from ${r.affineSource})`,
    `  affine`,
    row(0),
    row(1),
    row(2),
    `  intensity    min ${num(r.intensity.min)}  max ${num(r.intensity.max)}  mean ${num(r.intensity.mean)}  p1 ${num(r.intensity.p1)}  p99 ${num(r.intensity.p99)}`,
    `  non-finite   ${r.intensity.nonFinite}${r.intensity.nonFinite > 0 ? '  (NaN/Inf voxels present: normalisers replace them)' : ''}`,
  ];
  if (r.labels) {
    const shown = r.labels.length > 40 ? `${r.labels.slice(0, 40).join(' ')} ...` : r.labels.join(' ');
    lines.push(`  labels       ${r.labels.length} distinct: ${shown}`);
  }
  return lines.join('\n');
}
