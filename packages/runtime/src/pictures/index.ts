/**
 * Evaluation pictures: slice panels with label contours, deformed grids, Jacobian maps and box plots,
 * drawn on an RGB canvas with a built-in 5×7 font and written as PNG (node:zlib, no dependency).
 */
export * from './png.ts';
export * from './font.ts';
export * from './canvas.ts';
export * from './slices.ts';
export * from './panels.ts';
export * from './boxplot.ts';
export * from './lineplot.ts';
export * from './save.ts';
