/**
 * TypeScript types of the protobuf messages in proto/bora/v1, as @grpc/proto-loader presents
 * them with the options in proto.ts: camelCase fields, uint64 as number, bytes as Buffer, enums
 * as their names, oneofs naming the set field. Wire messages are converted to domain types at
 * one boundary (codec.ts); nothing else reads them.
 */

export type WireDType = 'DTYPE_UNSPECIFIED' | 'DTYPE_F32' | 'DTYPE_F16' | 'DTYPE_BF16';

export interface WireTensor {
  dtype: WireDType;
  shape: number[];
  data: Buffer;
}

export interface WireSlice {
  sequenceId: string;
  startPosition: number;
  tokenCount: number;
  tokenIds: number[];
}

export interface ActivationFrame {
  planEpoch: number;
  batchId: number;
  chunkIndex: number;
  chunkCount: number;
  slices: WireSlice[];
  hidden: WireTensor | null;
  stageIndex: number;
  error: string;
  code: number;
  etcdOutage: boolean;
}

export interface ForwardAck {
  batchId: number;
  error: string;
  code: number;
}

export interface ResultsRequest {
  planEpoch: number;
}

export interface ResultFrame {
  planEpoch: number;
  batchId: number;
  chunkIndex: number;
  chunkCount: number;
  slices: WireSlice[];
  logits: WireTensor | null;
  error: string;
  code: number;
}

export interface ReleaseRequest {
  planEpoch: number;
  sequenceIds: string[];
}

export interface ReleaseReply {
  released: number;
}

export interface WorkerStatusReply {
  workerId: string;
  planEpoch: number;
  hasRange: boolean;
  layerStart: number;
  layerEnd: number;
  sequences: number;
  kvCacheBytes: number;
  serving: boolean;
  /** Tokens routed per (layer, expert) since the worker started. Always present when decoded;
   * optional so that replies built by hand (the chaos observer's tests) may leave it out. */
  expertTokens?: ExpertTokenCount[];
  loading?: boolean;
}

export interface ExpertTokenCount {
  layer: number;
  expert: number;
  tokens: number;
}

export interface ExpertCallMessage {
  expert: number;
  x: WireTensor | null;
}

export interface ExpertRequest {
  planEpoch: number;
  layer: number;
  calls: ExpertCallMessage[];
}

export interface ExpertReply {
  outputs: WireTensor[];
}

export interface TensorRequest {
  model: string;
  name: string;
}

export interface TensorChunk {
  dtype: WireDType;
  shape: number[];
  totalBytes: number;
  offset: number;
  data: Buffer;
  sha256: Buffer;
}

export interface ConfigRequest {
  model: string;
}

export interface ConfigReply {
  configJson: string;
  model: string;
}

// ---- client API (inference.proto) ----

export interface WireSamplingParams {
  greedy: boolean;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

export interface GenerateRequest {
  model: string;
  text?: string;
  tokenIds?: { ids: number[] } | null;
  promptHandle?: string;
  prompt?: 'text' | 'tokenIds' | 'promptHandle';
  maxTokens: number;
  sampling: WireSamplingParams | null;
  stop: string[];
  ignoreEos: boolean;
  returnFirstLogits: boolean;
}

export type WireFinishReason = 'FINISH_REASON_UNSPECIFIED' | 'FINISH_REASON_EOS' | 'FINISH_REASON_LENGTH' | 'FINISH_REASON_STOP';

export interface TokenEvent {
  index: number;
  tokenId: number;
  text: string;
  firstLogits: Buffer;
}

export interface FinishEvent {
  reason: WireFinishReason;
  text: string;
  promptTokens: number;
  generatedTokens: number;
  timeToFirstTokenMs: number;
  totalMs: number;
  resumes: number;
}

export interface GenerateEvent {
  token?: TokenEvent | null;
  finish?: FinishEvent | null;
  event?: 'token' | 'finish';
}

export interface PromptPiece {
  text?: string;
  tokenIds?: { ids: number[] } | null;
  piece?: 'text' | 'tokenIds';
}

export interface PromptHandle {
  handle: string;
  promptTokens: number;
}

export interface ChatTurn {
  user: string;
  maxTokens: number;
  sampling: WireSamplingParams | null;
}

export interface WorkerStatusMessage {
  id: string;
  address: string;
  layerStart: number;
  layerEnd: number;
  sequences: number;
  kvCacheBytes: number;
  ready: boolean;
  experts: { layer: number; experts: number[] }[];
}

export interface ClusterStatus {
  planEpoch: number;
  model: string;
  workers: WorkerStatusMessage[];
  activeSequences: number;
  waitingRequests: number;
  serving: boolean;
  settled: boolean;
}

export interface DrainRequest {
  workerId: string;
}

export interface DrainReply {
  planEpoch: number;
}

/** Planned hand-over (worker.proto CommitPlan / FetchKv). */
export interface SequencePosition {
  sequenceId: string;
  nextPosition: number;
}

export interface CommitRequest {
  planEpoch: number;
  sequences: SequencePosition[];
}

export interface CommitReply {
  migrated: boolean;
  detail: string;
}

export interface KvRequest {
  planEpoch: number;
  layerStart: number;
  layerEnd: number;
  sequenceIds: string[];
}

export interface KvSlice {
  sequenceId: string;
  layer: number;
  nextPosition: number;
  totalSlots: number;
  slotStart: number;
  positions: number[];
  keys: Buffer;
  values: Buffer;
}
