/** `llmed data generate report-proxy` as a user runs it: output, the statement, atomic refusal, one-line errors. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultDataDir } from '@llmed/reports';
import { llmed, tempDir } from '../helpers/workspace.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const DATA = defaultDataDir();
const hasCt = existsSync(join(DATA, 'abdomen/example_ct.nii.gz'));

describe('llmed data generate', () => {
  it.skipIf(!hasCt)('generates a small report-proxy and refuses to overwrite it without --force', () => {
    const out = join(tmp.dir, 'rp');
    const args = ['data', 'generate', 'report-proxy', '--out', out, '--count', '10', '--seed', '5', '--shape', '16x14x18', '--data-dir', DATA];
    const r = llmed(args, { timeoutMs: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/generated .*rp: train \d+ \/ val \d+ \/ test \d+ samples/);
    expect(r.stdout).toContain("pseudo-subjects of one CT, not radiologists' reports");
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(r.stdout).toContain(`manifest hash ${manifest.hash}`);
    expect(manifest.config).toMatchObject({ count: 10, seed: 5, outShape: [16, 14, 18] });
    const again = llmed(args);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/^error\[usage\] .*rp: .*exists\n {2}hint: pass --force/);
  });

  it('names what it can generate, and rejects a bad shape in one line', () => {
    const r = llmed(['data', 'generate', 'reports']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error\[usage\] data generate needs what to generate: report-proxy or report-proxy-brain \(got 'reports'\)/);
    const s = llmed(['data', 'generate', 'report-proxy', '--shape', '16x14', '--out', join(tmp.dir, 'x')]);
    expect(s.status).toBe(2);
    expect(s.stderr).toMatch(/--shape must be three integers/);
    expect(existsSync(join(tmp.dir, 'x'))).toBe(false);
  });
});
