/**
 * The names of registered model versions: `NAME@VERSION` (a version, as `bora models add` records
 * it) and `NAME` or `NAME@VERSION` (what a request may ask for: `GenerateRequest.model`).
 *
 * Grammar (both parts are also etcd key segments, so neither may hold "/" or "@"):
 *   NAME     = ALNUM *( ALNUM / "." / "_" / "-" ), at most 128 characters
 *   VERSION  = ALNUM *( ALNUM / "." / "_" / "-" ), at most 64 characters
 *   REF      = NAME "@" VERSION
 *   SELECTOR = NAME / REF
 * ALNUM is an ASCII letter or digit. Case matters ("Mistral" and "mistral" are two names).
 */
import { InvalidArgumentError } from '../errors';

export const MAX_MODEL_NAME_CHARS = 128;
export const MAX_MODEL_VERSION_CHARS = 64;

const PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** One registered version: `name@version`. */
export interface ModelRef {
  readonly name: string;
  readonly version: string;
}

/** What a request names: a model (any served version) or one version of it. */
export interface ModelSelector {
  readonly name: string;
  /** Absent: whichever version serves the name now. */
  readonly version?: string;
}

function checkPart(text: string, what: 'name' | 'version', maxChars: number, whole: string): string {
  if (text.length === 0) throw new InvalidArgumentError(`model ${JSON.stringify(whole)}: the ${what} is empty (expected NAME@VERSION)`);
  if (text.length > maxChars) throw new InvalidArgumentError(`model ${JSON.stringify(whole)}: the ${what} has ${text.length} characters, at most ${maxChars} are allowed`);
  if (!PART.test(text)) {
    throw new InvalidArgumentError(`model ${JSON.stringify(whole)}: the ${what} ${JSON.stringify(text)} must start with a letter or digit and hold only letters, digits, ".", "_" and "-"`);
  }
  return text;
}

/** `NAME` or `NAME@VERSION`; throws InvalidArgumentError naming what is wrong. */
export function parseModelSelector(text: string): ModelSelector {
  const at = text.indexOf('@');
  if (at < 0) return { name: checkPart(text, 'name', MAX_MODEL_NAME_CHARS, text) };
  if (text.indexOf('@', at + 1) >= 0) throw new InvalidArgumentError(`model ${JSON.stringify(text)}: more than one "@" (expected NAME@VERSION)`);
  return {
    name: checkPart(text.slice(0, at), 'name', MAX_MODEL_NAME_CHARS, text),
    version: checkPart(text.slice(at + 1), 'version', MAX_MODEL_VERSION_CHARS, text),
  };
}

/** `NAME@VERSION` exactly; throws InvalidArgumentError naming what is wrong. */
export function parseModelRef(text: string): ModelRef {
  const selector = parseModelSelector(text);
  if (selector.version === undefined) throw new InvalidArgumentError(`model ${JSON.stringify(text)}: a version is required (expected NAME@VERSION)`);
  return { name: selector.name, version: selector.version };
}

/** Whether `text` is a well-formed NAME@VERSION. */
export function isModelRef(text: string): boolean {
  try {
    parseModelRef(text);
    return true;
  } catch {
    return false;
  }
}

export function formatModelRef(ref: ModelRef): string {
  return `${ref.name}@${ref.version}`;
}
