export * from './errors.ts';
export * from './shapes.ts';
export * from './plugin.ts';
export * from './workspace.ts';
export * from './registry.ts';
export * from './config.ts';
export * from './compose.ts';
export * from "./llm.ts";
