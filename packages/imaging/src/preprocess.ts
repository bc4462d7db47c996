/**
 * Per-volume preprocessing, the one implementation shared by dataset preparation (training) and native
 * inference (`llmed register`): reorientation → resampling to the prepared grid → intensity ops for the
 * volume's role. Labels: reorientation → nearest resampling → relabel / left-right merge. Displacement
 * fields (a pair's true field): reorientation → trilinear resampling → voxels of the prepared grid.
 * The settings are an experiment's `data.preprocess` section (and are copied into export manifests).
 */
import type { IntensityOp } from './intensity.ts';
import { applyIntensityOps } from './intensity.ts';
import { mergeLeftRight, relabel, toLabelMap } from './labels.ts';
import { dataError } from '@llmed/core/errors';
import { countNonFinite } from './nifti.ts';
import { fieldMmToVoxels } from './nifti-write.ts';
import { reorientToCanonical } from './orientation.ts';
import { resampleOntoGrid, resampleToShape, type TargetGrid } from './resample.ts';
import type { Vec3, Volume } from './volume.ts';

export interface PreprocessSettings {
  shape: Vec3 | number[];
  orientation?: string;
  moving: IntensityOp[] | unknown[];
  fixed: IntensityOp[] | unknown[];
  labels?: { values?: number[]; table?: Record<string, number>; mergeLeftRight?: boolean };
}

export type VolumeRole = 'moving' | 'fixed';

/**
 * A volume the preprocessing can use: not NaN everywhere, and a 3-D grid — no axis of one voxel where the
 * model grid has more (`shape` in the volume's own axis order; every axis when it is sampled in world space).
 */
function checkImage(vol: Volume, shape: readonly number[], where: string): void {
  if (vol.data.length > 0 && countNonFinite(vol.data) === vol.data.length) {
    throw dataError(where, 'every voxel is NaN or infinite: there is no image to register', 'check how the file was written (a failed conversion often leaves NaN everywhere)');
  }
  checkResamplable(vol, shape, where);
}

function checkResamplable(vol: Volume, shape: readonly number[], where: string): void {
  const flat = vol.dims.findIndex((d, c) => d < 2 && shape[c] > 1);
  if (flat >= 0) {
    throw dataError(where, `is a ${vol.dims.join('×')} grid: axis ${flat} has a single voxel, so it cannot be resampled to ${shape.join('×')}`, 'a 3-D volume is needed (a 1-D or 2-D image has no volume to register)');
  }
}

/** Image: orientation → trilinear resample to `shape` → the role's intensity ops. */
export function preprocessImage(vol: Volume, p: PreprocessSettings, role: VolumeRole, where: string): Volume<Float32Array> {
  let v: Volume = p.orientation ? reorientToCanonical(vol, p.orientation) : vol;
  checkImage(v, p.shape, where);
  v = resampleToShape(v, p.shape, 'linear');
  return applyIntensityOps(v, role === 'moving' ? p.moving : p.fixed, `${where} ${role} intensity ops`).volume;
}

/**
 * Image of a second scan on a grid already prepared from the first (the moving scan on the fixed scan's
 * model grid): sampled in world space through both affines (`resampleOntoGrid`, trilinear), then the
 * role's intensity ops. Voxels outside the scan's field of view are missing (NaN) to the ops, which
 * exclude them from their statistics and give them the op's low value (0 where there are no ops).
 */
export function preprocessImageOnGrid(vol: Volume, grid: TargetGrid, p: PreprocessSettings, role: VolumeRole, where: string): Volume<Float32Array> {
  checkImage(vol, grid.dims, where);
  const v = resampleOntoGrid(vol, grid, 'linear', { outside: NaN });
  const out = applyIntensityOps(v, role === 'moving' ? p.moving : p.fixed, `${where} ${role} intensity ops`).volume;
  const d = out.data;
  for (let q = 0; q < d.length; q++) if (d[q] - d[q] !== 0) d[q] = 0;
  return out;
}

/** Label map: orientation → nearest resample to `shape` → relabel table → left/right merge. */
export function preprocessLabels(vol: Volume, p: PreprocessSettings, where: string): Volume<Int32Array> {
  let v: Volume = p.orientation ? reorientToCanonical(vol, p.orientation) : vol;
  checkResamplable(v, p.shape, where);
  v = resampleToShape(v, p.shape, 'nearest');
  let lab = toLabelMap(v, where);
  if (p.labels?.table) lab = relabel(lab, p.labels.table, { unmapped: 'zero' });
  if (p.labels?.mergeLeftRight) lab = mergeLeftRight(lab) as Volume<Int32Array>;
  return lab;
}

/**
 * A displacement field saved in world millimetres (NIfTI DISPVECT on the fixed image's grid) → the same
 * field on the prepared grid, in voxels of that grid (the unit networks predict in). The vectors are
 * physical, so resampling interpolates them unchanged and only the final unit conversion uses the grid.
 */
export function preprocessField(vol: Volume, p: PreprocessSettings, where: string): Volume<Float32Array> {
  if (vol.components !== 3) throw dataError(where, `not a displacement field: ${vol.components} component(s), expected a [nx,ny,nz,1,3] vector image in mm`);
  let v: Volume = p.orientation ? reorientToCanonical(vol, p.orientation, { vectors: 'world' }) : vol;
  checkResamplable(v, p.shape, where);
  v = resampleToShape(v, p.shape, 'linear');
  return { ...v, data: fieldMmToVoxels(v.data, v), datatype: 'float32', intent: 'VECTOR' } as Volume<Float32Array>;
}
