/** What the coordinator's safety filter is built from: a policy file's rules and a moderation service. */
import type { ModerationOptions } from './moderation-client';
import type { SafetyPolicy } from './policy-file';

export interface SafetyOptions {
  readonly policy?: SafetyPolicy;
  readonly moderation?: ModerationOptions;
}
