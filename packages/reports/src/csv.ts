/**
 * A small RFC 4180 CSV reader (quoted fields may hold commas, doubled quotes and newlines), enough for
 * M3D-VQA and CT-RATE's report tables. Rows come back as objects keyed by the header; a problem names
 * the file, the row (1-based, the header is row 1) and the column.
 */
import { readFileSync } from 'node:fs';
import { dataAt } from './json.ts';

export interface CsvTable {
  file: string;
  header: string[];
  /** Each data row with the 1-based line-of-record number it started on (header = 1). */
  rows: Array<{ row: number; values: Record<string, string> }>;
}

export function parseCsv(text: string, file: string): CsvTable {
  const records: Array<{ row: number; fields: string[] }> = [];
  let field = '';
  let fields: string[] = [];
  let inQuotes = false;
  let recordNo = 1;
  let startedAt = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a UTF-8 BOM (spreadsheet exports) is not part of the first name
  const endRecord = () => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) records.push({ row: startedAt, fields });
    fields = [];
    field = '';
    recordNo++;
    startedAt = recordNo;
  };
  for (; i < text.length; i++) {
    const c = text[i];
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i++; } else inQuotes = false;
      } else field += c;
      continue;
    }
    if (c === '"') {
      if (field !== '') throw dataAt(file, `row ${startedAt}`, 'a quote inside an unquoted field', 'quote the whole field and double the inner quotes');
      inQuotes = true;
    } else if (c === ',') { fields.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
    } else field += c;
  }
  if (inQuotes) throw dataAt(file, `row ${startedAt}`, 'a quoted field is never closed (the file may be truncated)');
  if (field !== '' || fields.length) endRecord();
  if (records.length === 0) throw dataAt(file, '', 'is empty: expected a header row');
  const header = records[0].fields.map((h) => h.trim());
  const rows = records.slice(1).map(({ row, fields: f }) => {
    if (f.length !== header.length) throw dataAt(file, `row ${row}`, `has ${f.length} fields, the header has ${header.length}`);
    const values: Record<string, string> = {};
    header.forEach((h, n) => { values[h] = f[n]; });
    return { row, values };
  });
  return { file, header, rows };
}

export function readCsvFile(file: string, what: string): CsvTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw dataAt(file, '', `cannot read the ${what}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseCsv(text, file);
}

/** Fail unless the table has these columns, naming the missing ones. */
export function requireColumns(t: CsvTable, columns: readonly string[], what: string): void {
  const missing = columns.filter((c) => !t.header.includes(c));
  if (missing.length) throw dataAt(t.file, 'row 1', `the ${what} lacks column(s) ${missing.map((m) => JSON.stringify(m)).join(', ')} (found ${t.header.map((h) => JSON.stringify(h)).join(', ')})`);
}
