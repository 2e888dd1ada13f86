import { expect } from 'vitest';
import { ValidationError } from '../../src/errors.ts';

/** The field a ValidationError thrown by `fn` names (fails the test if `fn` throws anything else or nothing). */
export function validationField(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).field;
  }
  throw new Error('expected a ValidationError');
}
