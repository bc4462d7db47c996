/**
 * From an experiment's data section to scans and pairs, per protocol. The pair rules themselves are the
 * tested functions of @llmed/imaging (oaiPairs, oasisValidationPairs, abdomenMrCtPairs, srRegSplit);
 * this module only finds the files each dataset layout holds.
 *
 * The validation pairs pick the checkpoint that is exported ('best') and that a cascade phase starts from,
 * so they are never test pairs and never contain a test scan: where a protocol defines no validation split of
 * its own, they come from scans (or, for a plain pair list, pairs) held out of training — see `VAL_SCANS`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { dataError, type ExperimentConfig } from '@llmed/core';
import * as imaging from '@llmed/imaging';

export interface Scan { name: string; image: string; labels?: string; role: 'moving' | 'fixed' }
export interface Pair { moving: string; fixed: string; movingLabels?: string; fixedLabels?: string; groundTruthField?: string }
export interface ProtocolResult { scans: Scan[]; train: Pair[]; val: Pair[]; test: Pair[] }

const stem = (f: string) => basename(f).replace(/\.nii(\.gz)?$/, '');

/** Scans held out of training for validation where a protocol defines no validation split: the ordered pairs
 * among 2 scans (a → b, b → a), so training never sees a validation scan, not even as the other image of a pair
 * (a swap augmentation would otherwise train on a validation pair reversed). */
export const VAL_SCANS = 2;

/** Split `names` into training names and `VAL_SCANS` validation names (the last ones), as long as at least 2
 * scans stay for training; with fewer there is no validation split (the run exports its last checkpoint). */
function holdOutValidation(names: readonly string[]): { train: string[]; val: string[] } {
  if (names.length < VAL_SCANS + 2) return { train: [...names], val: [] };
  return { train: names.slice(0, names.length - VAL_SCANS), val: names.slice(names.length - VAL_SCANS) };
}

const orderedPairs = (names: readonly string[]): Pair[] => imaging.allOrderedPairs(names);

function pairsOfNames(p: { moving: string; fixed: string }[]): Pair[] {
  return p.map(({ moving, fixed }) => ({ moving, fixed }));
}

export async function pairsForProtocol(cfg: ExperimentConfig, root: string): Promise<ProtocolResult> {
  const d = cfg.data;
  switch (d.protocol) {
    case 'synthetic-deformation': {
      const gen = JSON.parse(readFileSync(join(root, 'generation.json'), 'utf8')) as { files: { image: string; labels?: string }[] };
      const scans: Scan[] = gen.files.map((f) => ({ name: stem(f.image), image: join(root, f.image), labels: f.labels ? join(root, f.labels) : undefined, role: 'moving' }));
      // Hold out the last third of the copies for testing and the 2 before them for validation: training
      // never sees either, not even as a fixed image.
      const nTest = Math.max(2, Math.round(scans.length / 3));
      const testNames = scans.slice(scans.length - nTest).map((s) => s.name);
      const { train, val } = holdOutValidation(scans.slice(0, scans.length - nTest).map((s) => s.name));
      return { scans, train: orderedPairs(train), val: orderedPairs(val), test: orderedPairs(testNames) };
    }
    case 'oai': {
      const names = imaging.listNifti(join(root, 'images')).map(stem);
      const scans: Scan[] = names.map((n) => ({ name: n, image: findNifti(join(root, 'images'), n), labels: maybeNifti(join(root, 'labels'), n), role: 'moving' }));
      const p = imaging.oaiPairs(names);
      // validation: 2 of the scans the protocol leaves unused, when there are any (oaiPairs' val)
      return { scans, train: pairsOfNames(p.train), val: pairsOfNames(p.val ?? []), test: pairsOfNames(p.test) };
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
        const { train, val } = holdOutValidation(scans.map((s) => s.name).filter((n) => !uniq.includes(n)));
        return { scans, train: orderedPairs(train), val: orderedPairs(val), test };
      }
      if (d.protocol === 'abdomen-mrct') {
        const mr = scans.filter((s) => s.role === 'moving').map((s) => s.name);
        const ct = scans.filter((s) => s.role === 'fixed').map((s) => s.name);
        const p = imaging.abdomenMrCtPairs(mr, ct);
        // validation: the last MR → the last CT, both taken out of training (when at least one of each stays)
        const [vm, vc] = [mr[mr.length - 1], ct[ct.length - 1]];
        const test = pairsOfNames(p.test);
        const inTest = new Set(test.flatMap((q) => [q.moving, q.fixed]));
        const train = pairsOfNames(p.train).filter((q) => q.moving !== vm && q.fixed !== vc);
        const canHold = !inTest.has(vm) && !inTest.has(vc) && train.length > 0;
        return { scans, train: canHold ? train : pairsOfNames(p.train), val: canHold ? [{ moving: vm, fixed: vc }] : [], test };
      }
      // Learn2Reg's registration_val pairs are the evaluation pairs (its test labels are not public), so the
      // validation scans are held out of the training scans instead
      const test = ds.registrationVal.map((p) => ({ moving: stem(p.moving), fixed: stem(p.fixed) }));
      const testNames = new Set(test.flatMap((p) => [p.moving, p.fixed]));
      const { train, val } = holdOutValidation(scans.map((s) => s.name).filter((n) => !testNames.has(n)));
      return { scans, train: orderedPairs(train), val: orderedPairs(val), test };
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
      // the last fifth is the test set; the 2 pairs before it validate and are not trained on, as long as at
      // least 2 stay for training (order a pair list so that these are the intended pairs)
      const nTest = Math.max(1, Math.round(pairs.length / 5));
      const rest = pairs.slice(0, pairs.length - nTest);
      const nVal = rest.length >= 4 ? 2 : 0;
      return { scans: [...scans.values()], train: rest.slice(0, rest.length - nVal), val: rest.slice(rest.length - nVal), test: pairs.slice(-nTest) };
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
