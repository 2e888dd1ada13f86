import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS: its default export arrives as the module object under NodeNext.
/** Adds ajv-formats' formats (date-time, uri...) to an Ajv instance of either draft. */
export const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as <A>(ajv: A) => A;
