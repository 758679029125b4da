/**
 * The coordinator's safety filter: a policy's rules (policy-file.ts) and, optionally, an external
 * moderation service (moderation-client.ts), applied to prompts before they reach the workers and
 * to generated text while it streams.
 *
 *   checkPrompt(text)   the policy's prompt rules, then the moderation service; the verdict is the
 *                       prompt to run (redactions applied) or a block. A prompt given as token ids
 *                       cannot be rewritten, so there a redact match blocks.
 *   openOutput()        a TextFilter for one stream (the policy's output rules through a
 *                       StreamMatcher): text is held back only while a rule could still match it.
 *
 * The moderation service sees prompts only: checking output there would hold back text for a
 * round trip per piece.
 *
 * Every incident (a rule acting, the service flagging or failing) counts in a metric and writes
 * one audit line naming the request, the caller, the rule and the action, never the text.
 * Any streaming path (gRPC here, the HTTP API) uses the same two calls.
 */
import { randomUUID } from 'node:crypto';
import type { TextFilter, TextFilterStep } from '../../common/generation/text-filter';
import type { AuditLog } from '../../common/security/audit';
import type { ModerationClient } from './moderation-client';
import { rulesFor, type SafetyPolicy } from './policy-file';
import type { CompiledRule, SafetyAction, SafetyStage } from './rules';
import { StreamMatcher, type RuleMatch } from './stream-matcher';

/** One request as the filter reports it: its id and who sent it. */
export interface SafetyRequestContext {
  readonly request: string;
  readonly who: string;
}

export interface SafetyIncident {
  readonly request: string;
  readonly stage: SafetyStage;
  readonly action: SafetyAction;
  /** The policy rule's id, or `moderation` / `moderation-unavailable` for the external service. */
  readonly rule: string;
}

/** Where incidents are counted (CoordinatorMetrics implements it). */
export interface SafetyMetrics {
  countSafetyIncident(stage: SafetyStage, action: SafetyAction): void;
  countModerationFailure(outcome: 'allowed' | 'blocked'): void;
}

export type PromptVerdict =
  | { readonly kind: 'allowed'; /** The prompt to run, redactions applied. */ readonly text: string }
  | { readonly kind: 'blocked'; readonly incident: SafetyIncident };

export interface SafetyFilterOptions {
  readonly policy?: SafetyPolicy;
  readonly moderation?: ModerationClient;
  readonly metrics?: SafetyMetrics;
  readonly audit?: AuditLog;
}

export function newSafetyRequestId(): string {
  return randomUUID();
}

export class SafetyFilter {
  private readonly promptRules: readonly CompiledRule[];
  private readonly outputRules: readonly CompiledRule[];

  constructor(private readonly options: SafetyFilterOptions) {
    this.promptRules = options.policy === undefined ? [] : rulesFor(options.policy, 'prompt');
    this.outputRules = options.policy === undefined ? [] : rulesFor(options.policy, 'output');
  }

  /** Whether generated text is checked (else openOutput() is not needed). */
  get checksOutput(): boolean {
    return this.outputRules.length > 0;
  }

  /**
   * A prompt's verdict. `redactable`: whether a redacted prompt can be run (text yes; token ids
   * no, so there a redact match blocks).
   */
  async checkPrompt(text: string, context: SafetyRequestContext, redactable: boolean): Promise<PromptVerdict> {
    let checked = text;
    if (this.promptRules.length > 0) {
      const matcher = new StreamMatcher(this.promptRules);
      const first = matcher.push(text);
      const step = first.blocked !== undefined ? first : joinSteps(first, matcher.end());
      const blockedBy = step.blocked ?? (redactable ? undefined : step.matches[0]);
      if (blockedBy !== undefined) return { kind: 'blocked', incident: this.report(context, 'prompt', 'block', blockedBy.rule.spec.id) };
      for (const m of step.matches) this.report(context, 'prompt', m.action, m.rule.spec.id);
      checked = step.release;
    }
    const moderation = this.options.moderation;
    if (moderation !== undefined) {
      const verdict = await moderation.check(checked, context.request, 'prompt');
      if (verdict.kind === 'flagged') {
        return { kind: 'blocked', incident: this.report(context, 'prompt', 'block', 'moderation', verdict.categories.join(',')) };
      }
      if (verdict.kind === 'failed') {
        this.options.metrics?.countModerationFailure(verdict.allowed ? 'allowed' : 'blocked');
        this.options.audit?.record({
          who: context.who,
          what: 'safety.moderation',
          outcome: 'failed',
          detail: { request: context.request, failMode: moderation.failMode, reason: verdict.reason },
        });
        if (!verdict.allowed) return { kind: 'blocked', incident: this.report(context, 'prompt', 'block', 'moderation-unavailable') };
      }
    }
    return { kind: 'allowed', text: checked };
  }

  /** The filter for one stream's generated text. */
  openOutput(context: SafetyRequestContext): TextFilter {
    const matcher = new StreamMatcher(this.outputRules);
    const settle = (step: { release: string; matches: readonly RuleMatch[]; blocked?: RuleMatch }): TextFilterStep => {
      for (const m of step.matches) this.report(context, 'output', m.action, m.rule.spec.id);
      return {
        release: step.release,
        blocked: step.blocked !== undefined,
        settledChars: matcher.settledChars,
        filtered: step.matches.map((m) => ({ start: m.offset, end: m.action === 'block' ? Infinity : m.offset + m.lengthChars })),
      };
    };
    return {
      push: (text) => settle(matcher.push(text)),
      end: () => settle(matcher.end()),
    };
  }

  private report(context: SafetyRequestContext, stage: SafetyStage, action: SafetyAction, rule: string, categories?: string): SafetyIncident {
    this.options.metrics?.countSafetyIncident(stage, action);
    this.options.audit?.record({
      who: context.who,
      what: `safety.${action}`,
      outcome: action === 'block' ? 'refused' : 'ok',
      detail: { request: context.request, stage, rule, action, ...(categories === undefined ? {} : { categories }) },
    });
    return { request: context.request, stage, action, rule };
  }
}

function joinSteps(a: { release: string; matches: readonly RuleMatch[] }, b: { release: string; matches: readonly RuleMatch[]; blocked?: RuleMatch }): {
  release: string;
  matches: readonly RuleMatch[];
  blocked?: RuleMatch;
} {
  return { release: a.release + b.release, matches: [...a.matches, ...b.matches], ...(b.blocked === undefined ? {} : { blocked: b.blocked }) };
}
