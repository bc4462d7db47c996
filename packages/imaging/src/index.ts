/**
 * @llmed/imaging — NIfTI I/O, the Volume type, orientation, resampling, intensity transforms, label
 * maps, geometry checks, datasets and pair protocols, the prepared cache, and inspection.
 */
export * from './affine.ts';
export * from './volume.ts';
export * from './nifti.ts';
export * from './nifti-write.ts';
export * from './orientation.ts';
export * from './resample.ts';
export * from './stats.ts';
export * from './intensity.ts';
export * from './labels.ts';
export * from './geometry.ts';
export * from './datasets.ts';
export * from './protocols.ts';
export * from './cache.ts';
export * from './inspect.ts';
export * from './warp.ts';
export * from './distance.ts';
export * from './jacobian.ts';
export * from './metrics.ts';
export * from './preprocess.ts';
export * from './surface-elements.ts';
