/**
 * Create and migrate an embedded (PGlite) database in the given directory, then exit: the
 * benchmark runs this in a child process, so the one-time cost of a new database (PGlite runs
 * initdb inside the process, several hundred MiB at its peak) is not in the figures of the run,
 * which then opens the directory as a restarted rebill does.
 */
import { createDatabase } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: pglite-init.ts <directory>\n');
  process.exit(2);
}
const database = await createDatabase({ dataDir: dir });
try {
  await migrate(database);
} finally {
  await database.close();
}
