/**
 * From an experiment's data section to scans and pairs, per protocol. The pair rules themselves are the
 * tested functions of @llmed/imaging (oaiPairs, oasisValidationPairs, abdomenMrCtPairs, srRegSplit);
 * this module only finds the files each dataset layout holds.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { dataError, type ExperimentConfig } from '@llmed/core';
import * as imaging from '@llmed/imaging';

export interface Scan { name: string; image: string; labels?: string; role: 'moving' | 'fixed' }
export interface Pair { moving: string; fixed: string; movingLabels?: string; fixedLabels?: string; groundTruthField?: string }
export interface ProtocolResult { scans: Scan[]; train: Pair[]; val: Pair[]; test: Pair[] }

const stem = (f: string) => basename(f).replace(/\.nii(\.gz)?$/, '');

function pairsOfNames(p: { moving: string; fixed: string }[]): Pair[] {
  return p.map(({ moving, fixed }) => ({ moving, fixed }));
}

export async function pairsForProtocol(cfg: ExperimentConfig, root: string): Promise<ProtocolResult> {
  const d = cfg.data;
  switch (d.protocol) {
    case 'synthetic-deformation': {
      const gen = JSON.parse(readFileSync(join(root, 'generation.json'), 'utf8')) as { files: { image: string; labels?: string }[] };
      const scans: Scan[] = gen.files.map((f) => ({ name: stem(f.image), image: join(root, f.image), labels: f.labels ? join(root, f.labels) : undefined, role: 'moving' }));
      // Hold out the last third of the copies: training never sees them, not even as a fixed image.
      const nTest = Math.max(2, Math.round(scans.length / 3));
      const trainNames = scans.slice(0, scans.length - nTest).map((s) => s.name);
      const testNames = scans.slice(scans.length - nTest).map((s) => s.name);
      const ordered = (names: string[]) => names.flatMap((m) => names.filter((f) => f !== m).map((f) => ({ moving: m, fixed: f })));
      const test = ordered(testNames);
      return { scans, train: ordered(trainNames), val: test.slice(0, 2), test };
    }
    case 'oai': {
      const names = imaging.listNifti(join(root, 'images')).map(stem);
      const scans: Scan[] = names.map((n) => ({ name: n, image: findNifti(join(root, 'images'), n), labels: maybeNifti(join(root, 'labels'), n), role: 'moving' }));
      const p = imaging.oaiPairs(names);
      return { scans, train: pairsOfNames(p.train), val: pairsOfNames(p.val ?? p.test.slice(0, 10)), test: pairsOfNames(p.test) };
    }
    case 'srreg': {
      const names = imaging.listNifti(join(root, 'mr')).map(stem);
      const scans: Scan[] = names.flatMap((n) => [
        { name: `${n}_mr`, image: findNifti(join(root, 'mr'), n), labels: maybeNifti(join(root, 'seg'), n), role: 'moving' as const },
        { name: `${n}_ct`, image: findNifti(join(root, 'ct'), n), labels: maybeNifti(join(root, 'seg'), n), role: 'fixed' as const },
      ]);
      const p = imaging.srRegSplit(names, cfg.train.seed);
      const toScan = (q: { moving: string; fixed: string }) => ({ moving: `${q.moving}_mr`, fixed: `${q.fixed}_ct` });
      return { scans, train: p.train.map(toScan), val: (p.val ?? []).map(toScan), test: p.test.map(toScan) };
    }
    case 'learn2reg':
    case 'oasis':
    case 'abdomen-mrct': {
      if (!d.manifest) throw dataError(`${cfg.name} data.manifest`, `protocol '${d.protocol}' needs the Learn2Reg dataset JSON name in data.manifest`);
      const ds = await imaging.readLearn2RegDataset(join(root, d.manifest));
      const scans: Scan[] = ds.training.map((e) => ({ name: stem(e.image), image: e.image, labels: e.label, role: roleOf(cfg, e.image) }));
      if (d.protocol === 'oasis') {
        const names = ds.registrationVal.flatMap((p) => [stem(p.moving), stem(p.fixed)]);
        const uniq = [...new Set(names)];
        const test = pairsOfNames(imaging.oasisValidationPairs(uniq, { variant: 'all-ordered' }).test);
        const trainNames = scans.map((s) => s.name).filter((n) => !uniq.includes(n));
        const train = trainNames.flatMap((m) => trainNames.filter((f) => f !== m).map((f) => ({ moving: m, fixed: f })));
        return { scans, train, val: test.slice(0, 10), test };
      }
      if (d.protocol === 'abdomen-mrct') {
        const mr = scans.filter((s) => s.role === 'moving').map((s) => s.name);
        const ct = scans.filter((s) => s.role === 'fixed').map((s) => s.name);
        const p = imaging.abdomenMrCtPairs(mr, ct);
        return { scans, train: pairsOfNames(p.train), val: pairsOfNames(p.test.slice(0, 2)), test: pairsOfNames(p.test) };
      }
      const val = ds.registrationVal.map((p) => ({ moving: stem(p.moving), fixed: stem(p.fixed) }));
      const valNames = new Set(val.flatMap((p) => [p.moving, p.fixed]));
      const trainNames = scans.map((s) => s.name).filter((n) => !valNames.has(n));
      return { scans, train: trainNames.flatMap((m) => trainNames.filter((f) => f !== m).map((f) => ({ moving: m, fixed: f }))), val, test: val };
    }
    case 'pairs': {
      if (!d.manifest) throw dataError(`${cfg.name} data.manifest`, "protocol 'pairs' needs data.manifest (a JSON or CSV list of pairs)");
      const list = await imaging.readPairsFile(join(root, d.manifest));
      const scans = new Map<string, Scan>();
      const add = (image: string, labels: string | undefined, role: 'moving' | 'fixed') => {
        const name = stem(image);
        if (!scans.has(name)) scans.set(name, { name, image, labels, role });
        return name;
      };
      const pairs: Pair[] = list.map((p) => ({
        moving: add(p.moving, p.movingLabels, 'moving'), fixed: add(p.fixed, p.fixedLabels, 'fixed'),
        ...(p.groundTruthField ? { groundTruthField: p.groundTruthField } : {}),
      }));
      const nTest = Math.max(1, Math.round(pairs.length / 5));
      return { scans: [...scans.values()], train: pairs.slice(0, pairs.length - nTest), val: pairs.slice(-nTest).slice(0, 2), test: pairs.slice(-nTest) };
    }
  }
}

/** Multimodal sets: the scan's modality (from a `_0000`/`_0001` suffix, or MR/CT in its name) decides its role. */
function roleOf(cfg: ExperimentConfig, image: string): 'moving' | 'fixed' {
  const m = cfg.data.modality;
  if (!m || m.moving === m.fixed) return 'moving';
  const n = basename(image).toLowerCase();
  if (n.includes(`_${m.fixed.toLowerCase()}`) || /_0001\.nii/.test(n)) return 'fixed';
  return 'moving';
}

function findNifti(dir: string, name: string): string {
  const f = maybeNifti(dir, name);
  if (!f) throw dataError(dir, `no ${name}.nii.gz or ${name}.nii in this folder`);
  return f;
}

function maybeNifti(dir: string, name: string): string | undefined {
  for (const ext of ['.nii.gz', '.nii']) if (existsSync(join(dir, name + ext))) return join(dir, name + ext);
  return undefined;
}
