/**
 * Every protocol's validation pairs are disjoint from its test pairs and hold no test scan, and (where the
 * protocol holds scans out) training never sees a validation scan: the validation pairs pick the exported
 * checkpoint, so a validation pair that is also a test pair would let the test set choose the model.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ExperimentConfig } from '@llmed/core';
import { pairsForProtocol, VAL_SCANS, type ProtocolResult } from '../src/protocols.ts';
import { tempDir } from '../../../test/helpers/workspace.ts';

const tmp = tempDir('llmed-protocols-');
afterAll(() => tmp.cleanup());

/** Empty files stand for the scans: the protocols read names and lists, never the volumes. */
function touch(dir: string, names: string[]): void {
  mkdirSync(dir, { recursive: true });
  for (const n of names) writeFileSync(join(dir, n), '');
}

const config = (data: Record<string, unknown>) => ({ name: 'p', data, train: { seed: 0 } }) as unknown as ExperimentConfig;
const key = (p: { moving: string; fixed: string }) => `${p.moving} -> ${p.fixed}`;
const scansOf = (pairs: { moving: string; fixed: string }[]) => new Set(pairs.flatMap((p) => [p.moving, p.fixed]));

function expectHonestSplit(r: ProtocolResult, opts: { scansHeldOut: boolean }): void {
  expect(r.val.length).toBeGreaterThan(0);
  const test = new Set(r.test.map(key));
  const train = new Set(r.train.map(key));
  for (const p of r.val) {
    expect(test.has(key(p)), `${key(p)} is both a validation and a test pair`).toBe(false);
    expect(train.has(key(p)), `${key(p)} is both a validation and a training pair`).toBe(false);
  }
  const testScans = scansOf(r.test);
  const valScans = [...scansOf(r.val)];
  if (opts.scansHeldOut) {
    expect(valScans.filter((s) => testScans.has(s))).toEqual([]);
    const trainScans = scansOf(r.train);
    expect(valScans.filter((s) => trainScans.has(s))).toEqual([]);
  }
}

describe('validation pairs are held out of training and are never test pairs', () => {
  it("'pairs': the 2 pairs before the test pairs, not trained on; too short a list has no validation", async () => {
    const root = join(tmp.dir, 'pairs');
    const files = Array.from({ length: 21 }, (_, i) => `s${i}.nii.gz`);
    touch(root, files);
    const list = Array.from({ length: 20 }, (_, i) => ({ moving: 's0.nii.gz', fixed: `s${i + 1}.nii.gz` }));
    writeFileSync(join(root, 'pairs.json'), JSON.stringify(list));
    const r = await pairsForProtocol(config({ protocol: 'pairs', manifest: 'pairs.json' }), root);
    expect([r.train.length, r.val.length, r.test.length]).toEqual([14, 2, 4]);
    expect(r.val.map((p) => p.fixed)).toEqual(['s15', 's16']);
    expectHonestSplit(r, { scansHeldOut: false });

    writeFileSync(join(root, 'short.json'), JSON.stringify(list.slice(0, 4)));
    const short = await pairsForProtocol(config({ protocol: 'pairs', manifest: 'short.json' }), root);
    expect([short.train.length, short.val.length, short.test.length]).toEqual([3, 0, 1]);
  });

  it("'synthetic-deformation': 2 copies before the test copies, in no training pair", async () => {
    const root = join(tmp.dir, 'synthetic');
    const files = Array.from({ length: 12 }, (_, i) => `copy_${String(i).padStart(2, '0')}.nii.gz`);
    touch(root, files);
    writeFileSync(join(root, 'generation.json'), JSON.stringify({ files: files.map((image) => ({ image })) }));
    const r = await pairsForProtocol(config({ protocol: 'synthetic-deformation' }), root);
    expect([...scansOf(r.val)]).toEqual(['copy_06', 'copy_07']);
    expect([r.train.length, r.val.length, r.test.length]).toEqual([30, 2, 12]);
    expectHonestSplit(r, { scansHeldOut: true });
  });

  it("'oasis' and plain Learn2Reg: the evaluation pairs are the test pairs; validation scans come out of training", async () => {
    const root = join(tmp.dir, 'l2r');
    const names = Array.from({ length: 8 }, (_, i) => `OASIS_${String(i).padStart(4, '0')}_0000.nii.gz`);
    touch(root, names);
    const val = [{ fixed: names[6], moving: names[7] }];
    writeFileSync(join(root, 'dataset.json'), JSON.stringify({ training: names.map((image) => ({ image })), registration_val: val }));
    for (const protocol of ['oasis', 'learn2reg']) {
      const r = await pairsForProtocol(config({ protocol, manifest: 'dataset.json' }), root);
      expect(r.val).toHaveLength(VAL_SCANS * (VAL_SCANS - 1));
      expect(scansOf(r.train).size).toBe(4);
      expectHonestSplit(r, { scansHeldOut: true });
    }
  });

  it("'abdomen-mrct': the last MR → the last CT, both taken out of training", async () => {
    const root = join(tmp.dir, 'abdomen');
    const mr = Array.from({ length: 13 }, (_, i) => `AbdomenMRCT_${String(i).padStart(4, '0')}_0000.nii.gz`);
    const ct = Array.from({ length: 13 }, (_, i) => `AbdomenMRCT_${String(i).padStart(4, '0')}_0001.nii.gz`);
    touch(root, [...mr, ...ct]);
    writeFileSync(join(root, 'dataset.json'), JSON.stringify({ training: [...mr, ...ct].map((image) => ({ image })) }));
    const r = await pairsForProtocol(config({ protocol: 'abdomen-mrct', manifest: 'dataset.json', modality: { moving: 'MR', fixed: 'CT' } }), root);
    expect(r.val.map(key)).toEqual(['AbdomenMRCT_0012_0000 -> AbdomenMRCT_0012_0001']);
    expect(r.test).toHaveLength(10);
    expectHonestSplit(r, { scansHeldOut: true });
  });
});
