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

/**
 * The log level of a CLI command. A person at a terminal reads the tables on stdout: JSON log
 * lines between them are noise, so there only warnings and errors are logged unless `--verbose`
 * or an explicit REBILL_LOG_LEVEL asks for more. Piped output (scripts, CI) and the serving
 * commands (`daemon`, `admin`) log at the configured level.
 */
export function cliLogLevel(o: {
  configured: string;
  /** REBILL_LOG_LEVEL was set in the environment (not the default). */
  explicit: boolean;
  verbose: boolean;
  terminal: boolean;
  serving: boolean;
}): string {
  if (o.verbose || o.explicit || o.serving || !o.terminal) return o.configured;
  return QUIET_ORDER.indexOf(o.configured) > QUIET_ORDER.indexOf('warn') ? o.configured : 'warn';
}

/** pino's levels, from the most to the least talkative. */
const QUIET_ORDER = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/**
 * The reader of stdout or stderr went away (`rebill ... | head -1`): end quietly, as a Unix
 * tool ended by SIGPIPE would, instead of dying on an unhandled EPIPE with a stack trace.
 * Nothing is left half done by it: a command writes its output after its work.
 */
export function endQuietlyOnClosedPipe(): void {
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  };
  process.stdout.on('error', onError);
  process.stderr.on('error', onError);
}

/** True for the error a write to a closed pipe ends in. */
export const isClosedPipe = (err: unknown): boolean =>
  (err as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';
