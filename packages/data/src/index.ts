/**
 * @llmed/data — dataset preparation as a library: an experiment's data section → the prepared cache
 * (`.cache/prepared/<experiment>/`) that training memory-maps and evaluation reads. The CLI's `llmed data
 * prepare`, the runtime and the benchmarks all call it by package name.
 */
export * from './prepare.ts';
export * from './protocols.ts';
export * from './prepare-report.ts';
