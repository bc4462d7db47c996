/**
 * Deterministic randomness for the stand-in generator: every stream is derived from the run seed and a
 * name (`seedFrom(seed, 'sample', 12)`), so adding a sample or a finding never shifts the numbers another
 * sample sees, and the same seed gives byte-identical output on any machine (no Math.random, no time).
 */
import { createHash } from 'node:crypto';
import { mulberry32 } from '@llmed/core';

/** A 32-bit seed from any parts, via SHA-256 (stable across platforms and Node versions). */
export function seedFrom(...parts: Array<string | number>): number {
  return createHash('sha256').update(parts.map(String).join('\u0000')).digest().readUInt32LE(0);
}

/** A named stream of @llmed/core's mulberry32: good enough for sampling positions and paraphrases. */
export class Rng {
  private readonly stream: () => number;
  constructor(seed: number) { this.stream = mulberry32(seed); }
  next(): number { return this.stream(); }
  uniform(lo: number, hi: number): number { return lo + (hi - lo) * this.next(); }
  int(lo: number, hiInclusive: number): number { return lo + Math.floor(this.next() * (hiInclusive - lo + 1)); }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('Rng.pick: empty list');
    return xs[Math.floor(this.next() * xs.length)];
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = Math.max(this.next(), 1e-12), v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
  /** True with probability p. */
  chance(p: number): boolean { return this.next() < p; }
}
