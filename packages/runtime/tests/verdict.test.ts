/** The evaluation says in words whether the model beat leaving the pairs unregistered. */
import { describe, expect, it } from 'vitest';
import { identityVerdict, tableMarkdown, type EvaluationTable } from '../src/index.ts';

function table(initial: Record<string, number>, model: Record<string, number>): EvaluationTable {
  const row = (method: string, m: Record<string, number>) => ({ method, metrics: Object.fromEntries(Object.entries(m).map(([id, mean]) => [id, { mean, std: 0, n: 2 }])) });
  return {
    tool: 'llmed evaluate', createdAt: '', experiment: 'demo', data: 'd', split: 'test', pairs: 2, export: '../export', sourceRun: 'r', checkpoint: 'best', step: 3,
    rows: [row('Initial (no registration)', initial), row('model', model)], perPair: [], dicePerLabel: {}, definitions: {}, pictures: [],
  };
}

describe('identityVerdict', () => {
  it('says when the model did not beat identity, on Dice', () => {
    const t = table({ dice: 0.34 }, { dice: 0.335 });
    expect(identityVerdict(t)).toBe('The model did NOT beat identity: Dice 34.0 % unregistered, 33.5 % registered — it has not learned to register these pairs (train longer, or on more data).');
    expect(tableMarkdown(t)).toContain('did NOT beat identity');
  });
  it('and when it did; endpoint error (lower is better) when there are no labels', () => {
    expect(identityVerdict(table({ dice: 0.34 }, { dice: 0.379 }))).toBe('The model beat identity: Dice 34.0 % unregistered → 37.9 % registered.');
    expect(identityVerdict(table({ 'endpoint-error': 2.82 }, { 'endpoint-error': 2.91 }))).toMatch(/did NOT beat identity: endpoint error 2\.82 mm unregistered, 2\.91 mm registered/);
    expect(identityVerdict(table({ sdlogj: 0 }, { sdlogj: 0.1 }))).toBeNull();
  });
});
