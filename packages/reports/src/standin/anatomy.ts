/**
 * What the stand-ins know about the anatomy of their source scans: which label ids make an organ, the
 * organ's name in reports, its region and side, and which findings it can carry. The CT table uses the
 * TotalSegmentator (v2, "total") ids of ../shared/data/abdomen/example_seg_fast_force_split.nii.gz; the
 * brain table FreeSurfer aseg ids.
 */
export type FindingKind = 'lesion' | 'stone' | 'effusion' | 'enlargement';
export type Side = 'left' | 'right' | 'both';

export interface Organ {
  /** Key used in facts ('kidney_left'). */
  key: string;
  /** Label ids in the source segmentation that make up this organ. */
  labels: number[];
  /** Names in reports; the first is the canonical one, all are parsed. */
  names: string[];
  region: string;
  side?: 'left' | 'right';
  /** Takes "are" ("the lateral ventricles are enlarged"). */
  plural?: boolean;
  findings: FindingKind[];
}

export interface Anatomy {
  id: 'ct' | 'brain';
  modality: 'CT' | 'MR';
  regions: string[];
  organs: Organ[];
  /** Labels whose voxels an enlarging organ may not take over (bone). */
  rigid: number[];
  /** Region whose report states the contrast phase (CT only). */
  phaseRegion?: string;
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

export const CT_ANATOMY: Anatomy = {
  id: 'ct',
  modality: 'CT',
  regions: ['chest', 'abdomen', 'pelvis'],
  phaseRegion: 'abdomen',
  organs: [
    { key: 'lung_left', labels: [10, 11], names: ['left lung base', 'left lower lung'], region: 'chest', side: 'left', findings: ['effusion'] },
    { key: 'lung_right', labels: [12, 13, 14], names: ['right lung base', 'right lower lung'], region: 'chest', side: 'right', findings: ['effusion'] },
    { key: 'liver', labels: [5], names: ['liver'], region: 'abdomen', findings: ['lesion', 'enlargement'] },
    { key: 'spleen', labels: [1], names: ['spleen'], region: 'abdomen', findings: ['lesion', 'enlargement'] },
    { key: 'kidney_right', labels: [2], names: ['right kidney'], region: 'abdomen', side: 'right', findings: ['lesion', 'stone'] },
    { key: 'kidney_left', labels: [3], names: ['left kidney'], region: 'abdomen', side: 'left', findings: ['lesion', 'stone'] },
    { key: 'gallbladder', labels: [4], names: ['gallbladder'], region: 'abdomen', findings: ['stone'] },
    { key: 'pancreas', labels: [7], names: ['pancreas'], region: 'abdomen', findings: ['lesion'] },
    { key: 'urinary_bladder', labels: [21], names: ['urinary bladder', 'bladder'], region: 'pelvis', findings: ['stone'] },
  ],
  rigid: [...range(25, 50), ...range(69, 78), ...range(91, 117)],
};

export const BRAIN_ANATOMY: Anatomy = {
  id: 'brain',
  modality: 'MR',
  regions: ['brain'],
  organs: [
    { key: 'white_matter_left', labels: [2], names: ['left cerebral white matter'], region: 'brain', side: 'left', findings: ['lesion'] },
    { key: 'white_matter_right', labels: [41], names: ['right cerebral white matter'], region: 'brain', side: 'right', findings: ['lesion'] },
    { key: 'thalamus_left', labels: [10], names: ['left thalamus'], region: 'brain', side: 'left', findings: ['lesion'] },
    { key: 'thalamus_right', labels: [49], names: ['right thalamus'], region: 'brain', side: 'right', findings: ['lesion'] },
    { key: 'ventricles', labels: [4, 43], names: ['lateral ventricles'], region: 'brain', plural: true, findings: ['enlargement'] },
  ],
  rigid: [],
};

export function organByKey(anatomy: Anatomy, key: string): Organ {
  const o = anatomy.organs.find((x) => x.key === key);
  if (!o) throw new Error(`no organ '${key}' in the ${anatomy.id} anatomy`);
  return o;
}
