import type { App } from '../app.ts';
import type { Config } from '../config.ts';

/** What every command needs from the program: the configuration, and an app to run against. */
export interface CliDeps {
  config(): Config;
  /**
   * Open the app (database migrated, gateways lazy), run `fn`, close everything. `serving`: a
   * long-running server (daemon, admin) whose logs are its output, on a terminal too.
   */
  withApp<T>(fn: (app: App) => Promise<T>, opts?: { asOf?: Date; serving?: boolean }): Promise<T>;
}
