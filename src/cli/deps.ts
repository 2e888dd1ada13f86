import type { App } from '../app.ts';
import type { Config } from '../config.ts';

/** What every command needs from the program: the configuration, and an app to run against. */
export interface CliDeps {
  config(): Config;
  /** Open the app (database migrated, gateways lazy), run `fn`, close everything. */
  withApp<T>(fn: (app: App) => Promise<T>, opts?: { asOf?: Date }): Promise<T>;
}
