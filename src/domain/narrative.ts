/**
 * What Worldpay carries in `instruction.narrative.line1`, the text on the customer's statement:
 * 1-24 characters from the set its card-payments OpenAPI document lists (letters, digits, space
 * and `_ ! @ # $ % ( ) * = . : ; ? [ ] { } ~ / + - , ` ^ &`). Worldpay turns anything else into a
 * space, so a narrative of emoji or Arabic would reach the statement blank: rebill refuses such a
 * narrative when the mandate is created or imported, never at billing.
 */
const NARRATIVE = /^[A-Za-z0-9 _!@#$%()*=.:;?[\]{}~/+\-,`^&]{1,24}$/;

/** Why `value` cannot be a statement narrative, or null when it can. Never repeats the value. */
export function narrativeProblem(value: string): string | null {
  if (value.length < 1) return 'is required';
  if (value.length > 24) return 'must be at most 24 characters';
  if (value.trim() === '') return 'must not be blank';
  if (!NARRATIVE.test(value))
    return 'may only contain A-Z a-z 0-9, space and _ ! @ # $ % ( ) * = . : ; ? [ ] { } ~ / + - , ` ^ & (what Worldpay prints on a statement)';
  return null;
}
