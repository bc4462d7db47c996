#!/usr/bin/env node
// The llmed command. TypeScript sources run through tsx's loader (registered here once), so the CLI,
// the tests and Nx targets execute the same code with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv.slice(2));
