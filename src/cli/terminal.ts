import cliProgress from 'cli-progress';

/**
 * The CLI's stderr on a terminal, shared by its log lines and its progress bar so the two
 * never share a line: while a bar is drawn, a log line is handed to the bar, which prints it
 * above itself on its next redraw; otherwise it goes straight out.
 */
let active: cliProgress.MultiBar | undefined;

/** A pino destination: whole lines, written around the bar. */
export const logDestination = {
  write(line: string): void {
    if (active) active.log(line.endsWith('\n') ? line : `${line}\n`);
    else process.stderr.write(line);
  },
};

export interface Progress {
  /** The run's total, known before the first charge goes (count due first). */
  total(n: number): void;
  /** Charges done so far; never moves the bar backwards. */
  update(done: number): void;
  /** Draw the last state, print what logs are held, and end the bar's line. */
  stop(): void;
}

const silent: Progress = { total() {}, update() {}, stop() {} };

/**
 * A progress bar on stderr when it is a terminal; nothing otherwise (CI, pipes, --json). It
 * starts when its total is known, so its percentage only ever goes up; should more turn up
 * than were counted (another process queued a charge meanwhile), the total grows with it.
 */
export function progressBar(label: string, enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return silent;
  const multi = new cliProgress.MultiBar(
    {
      format: `${label} [{bar}] {value}/{total} {percentage}% | {duration_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      // Redraw even when the bar's text has not changed: a log line printed above it moved
      // it down to a fresh line, which must get the bar again.
      forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let bar: cliProgress.SingleBar | undefined;
  let total = 0;
  let done = 0;
  return {
    total(n) {
      if (bar) return;
      total = n;
      bar = multi.create(Math.max(total, 1), 0);
      active = multi;
    },
    update(n) {
      if (!bar || n <= done) return;
      done = n;
      if (done > total) {
        total = done;
        bar.setTotal(total);
      }
      bar.update(done);
    },
    stop() {
      if (!bar) return;
      // a run with nothing due ends full, not at 0 of 1
      if (total === 0) bar.update(1);
      multi.update();
      multi.stop();
      active = undefined;
    },
  };
}
