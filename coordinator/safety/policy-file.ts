/**
 * The safety policy file (`bora coordinator --safety-policy FILE`), JSON:
 *
 *   {
 *     "rules": [
 *       { "id": "codenames", "kind": "deny", "phrases": ["project falcon", "falcon-9x"],
 *         "action": "block" },
 *       { "id": "card-number", "kind": "regex", "pattern": "\\b\\d{4}(?:[ -]?\\d{4}){3}\\b",
 *         "maxMatchChars": 19, "action": "redact", "stages": ["output"] }
 *     ]
 *   }
 *
 * Every rule: `id` (unique), `kind` ("deny" or "regex"), `action` ("block" or "redact"),
 * optional `stages` (["prompt", "output"] by default) and `replacement` ("[redacted]").
 * deny: `phrases` (non-empty strings), optional `caseSensitive` (false) and `wholeWord` (false).
 * regex: `pattern`, `maxMatchChars` (the longest match; an unbounded pattern is refused),
 * optional `flags` (of i, m, s, u).
 *
 * Anything else (an unknown field, a wrong type, a pattern that is unbounded or longer than it
 * says) is refused at load with an error naming the file and the rule.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../../common/errors';
import { DEFAULT_REPLACEMENT, compileRule, type CompiledRule, type RuleSpec, type SafetyAction, type SafetyStage } from './rules';

export interface SafetyPolicy {
  readonly rules: readonly CompiledRule[];
}

type Json = Record<string, unknown>;

const COMMON_FIELDS = ['id', 'kind', 'action', 'stages', 'replacement'];
const KIND_FIELDS: Readonly<Record<RuleSpec['kind'], readonly string[]>> = {
  deny: ['phrases', 'caseSensitive', 'wholeWord'],
  regex: ['pattern', 'flags', 'maxMatchChars'],
};

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Json, key: string, where: string, fallback?: string): string {
  const v = o[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'string') throw new InvalidArgumentError(`${where}: "${key}" must be a string`);
  return v;
}

function bool(o: Json, key: string, where: string): boolean {
  const v = o[key] ?? false;
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${where}: "${key}" must be true or false`);
  return v;
}

function stagesOf(o: Json, where: string): SafetyStage[] {
  const v = o.stages ?? ['prompt', 'output'];
  if (!Array.isArray(v) || v.length === 0 || !v.every((s) => s === 'prompt' || s === 'output')) {
    throw new InvalidArgumentError(`${where}: "stages" must be a non-empty list of "prompt" and "output"`);
  }
  return [...new Set(v as SafetyStage[])];
}

function ruleSpec(raw: unknown, index: number): RuleSpec {
  if (!isObject(raw)) throw new InvalidArgumentError(`rule #${index}: must be an object`);
  const where = typeof raw.id === 'string' ? `rule "${raw.id}"` : `rule #${index}`;
  const id = str(raw, 'id', where);
  if (id === '') throw new InvalidArgumentError(`${where}: "id" must not be empty`);
  const kind = raw.kind;
  if (kind !== 'deny' && kind !== 'regex') throw new InvalidArgumentError(`${where}: "kind" must be "deny" or "regex"`);
  const unknown = Object.keys(raw).filter((k) => !COMMON_FIELDS.includes(k) && !KIND_FIELDS[kind].includes(k));
  if (unknown.length > 0) throw new InvalidArgumentError(`${where}: unknown field "${unknown[0]}" for a ${kind} rule`);
  const action = raw.action;
  if (action !== 'block' && action !== 'redact') throw new InvalidArgumentError(`${where}: "action" must be "block" or "redact"`);
  const common = { id, action: action as SafetyAction, stages: stagesOf(raw, where), replacement: str(raw, 'replacement', where, DEFAULT_REPLACEMENT) };
  if (kind === 'deny') {
    const phrases = raw.phrases;
    if (!Array.isArray(phrases) || !phrases.every((p) => typeof p === 'string')) throw new InvalidArgumentError(`${where}: "phrases" must be a list of strings`);
    return { ...common, kind, phrases, caseSensitive: bool(raw, 'caseSensitive', where), wholeWord: bool(raw, 'wholeWord', where) };
  }
  const maxMatchChars = raw.maxMatchChars;
  if (typeof maxMatchChars !== 'number' || !Number.isSafeInteger(maxMatchChars) || maxMatchChars < 1) {
    throw new InvalidArgumentError(`${where}: "maxMatchChars" must be a whole number >= 1 (the longest text the pattern can match)`);
  }
  return { ...common, kind, pattern: str(raw, 'pattern', where), flags: str(raw, 'flags', where, ''), maxMatchChars };
}

/** A policy from its JSON text; errors say which rule and field are wrong. */
export function parsePolicy(text: string): SafetyPolicy {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(doc)) throw new InvalidArgumentError('the policy must be a JSON object with a "rules" list');
  const unknown = Object.keys(doc).filter((k) => k !== 'rules');
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown top-level field "${unknown[0]}"`);
  if (!Array.isArray(doc.rules)) throw new InvalidArgumentError('"rules" must be a list');
  const specs = doc.rules.map(ruleSpec);
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.id)) throw new InvalidArgumentError(`rule "${s.id}": the id is used twice`);
    seen.add(s.id);
  }
  return { rules: specs.map(compileRule) };
}

/** The policy in `path`; any fault is an InvalidArgumentError whose message starts with the path. */
export function loadPolicyFile(path: string): SafetyPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`safety policy ${path}: cannot read it: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  try {
    return parsePolicy(text);
  } catch (err) {
    throw new InvalidArgumentError(`safety policy ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** The rules that apply at `stage`, in policy order. */
export function rulesFor(policy: SafetyPolicy, stage: SafetyStage): CompiledRule[] {
  return policy.rules.filter((r) => r.spec.stages.includes(stage));
}
