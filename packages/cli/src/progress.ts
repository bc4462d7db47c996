/**
 * Progress lines for long work: a redrawn line on a terminal, one line every few seconds otherwise
 * (CI logs), always with the step, the rate and the ETA.
 */
export class Progress {
  private readonly start = Date.now();
  private lastPrint = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly label: string, private readonly total: number) {}

  update(done: number, detail = ''): void {
    const now = Date.now();
    if (done < this.total && now - this.lastPrint < (this.tty ? 100 : 5000)) return;
    this.lastPrint = now;
    const elapsed = (now - this.start) / 1000;
    const rate = done / Math.max(elapsed, 1e-9);
    const eta = done > 0 ? (this.total - done) / rate : NaN;
    // Clamped: a resumed run can report more steps than a stale total.
    const pct = this.total > 0 ? Math.min(100, Math.max(0, Math.floor((100 * done) / this.total))) : 100;
    const width = 24;
    const filled = Math.round((width * pct) / 100);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const line = `${this.label} ${bar} ${done}/${this.total} ${pct}%  ${formatRate(rate)}  ETA ${formatSeconds(eta)}${detail ? `  ${detail}` : ''}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}`);
    else process.stderr.write(`${line}\n`);
  }

  done(message?: string): void {
    if (this.tty) process.stderr.write('\n');
    if (message) process.stderr.write(`${message}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--';
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s - 60 * m)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function formatRate(r: number): string {
  if (!(r > 0) || !Number.isFinite(r)) return '-- it/s';
  return r >= 1 ? `${r.toFixed(2)} it/s` : `${(1 / Math.max(r, 1e-9)).toFixed(1)} s/it`;
}
