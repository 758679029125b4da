/**
 * The protobuf messages of proto/bora/v1 under the names the code uses. The types are generated
 * from the protos at every build (scripts/gen-proto-types.mjs writes ./generated), so code that
 * reads or writes a field a .proto no longer has, or has with another type, fails to compile.
 *
 * Each name is a message as the loader of proto.ts hands it to its receiver (the generated
 * `__Output` type): camelCase fields, every scalar and repeated field present with its default,
 * uint64 as number, bytes as Buffer, enums as their names, oneofs naming their set field. A message
 * built to send is built whole, as the same type, so what the sender writes is what the receiver
 * decodes and the codecs round-trip without casts; literals handed straight to a typed client or
 * a handler's callback are checked against the generated input types. Wire messages become domain
 * types in frames.ts, tensor-codec.ts and generate-codec.ts, and in the smaller services' handlers.
 */
import type { ActivationFrame__Output } from './generated/bora/v1/ActivationFrame';
import type { ChatTurn__Output } from './generated/bora/v1/ChatTurn';
import type { EmbedInput__Output } from './generated/bora/v1/EmbedInput';
import type { ClusterStatus__Output } from './generated/bora/v1/ClusterStatus';
import type { ConfigReply__Output } from './generated/bora/v1/ConfigReply';
import type { CommitReply__Output } from './generated/bora/v1/CommitReply';
import type { CommitRequest__Output } from './generated/bora/v1/CommitRequest';
import type { DType__Output } from './generated/bora/v1/DType';
import type { ExpertReply__Output } from './generated/bora/v1/ExpertReply';
import type { ExpertRequest__Output } from './generated/bora/v1/ExpertRequest';
import type { ExpertTokenCount__Output } from './generated/bora/v1/ExpertTokenCount';
import type { FinishReason__Output } from './generated/bora/v1/FinishReason';
import type { ForwardAck__Output } from './generated/bora/v1/ForwardAck';
import type { GenerateEvent__Output } from './generated/bora/v1/GenerateEvent';
import type { GenerateRequest__Output } from './generated/bora/v1/GenerateRequest';
import type { KvSlice__Output } from './generated/bora/v1/KvSlice';
import type { PromptPiece__Output } from './generated/bora/v1/PromptPiece';
import type { ResultFrame__Output } from './generated/bora/v1/ResultFrame';
import type { SamplingParams__Output } from './generated/bora/v1/SamplingParams';
import type { SequencePosition__Output } from './generated/bora/v1/SequencePosition';
import type { SequenceSlice__Output } from './generated/bora/v1/SequenceSlice';
import type { Tensor__Output } from './generated/bora/v1/Tensor';
import type { TensorChunk__Output } from './generated/bora/v1/TensorChunk';
import type { WorkerStatusReply__Output } from './generated/bora/v1/WorkerStatusReply';

// ---- data plane (worker.proto) ----

export type WireDType = DType__Output;
export type WireTensor = Tensor__Output;
export type WireSlice = SequenceSlice__Output;
export type ActivationFrame = ActivationFrame__Output;
export type ForwardAck = ForwardAck__Output;
export type ResultFrame = ResultFrame__Output;

/**
 * A worker's Status reply. `expertTokens` and `loading` are always present when decoded; they
 * are optional here so that replies built by hand (the chaos invariants' tests) may leave them out.
 */
export type WorkerStatusReply = Omit<WorkerStatusReply__Output, 'expertTokens' | 'loading'> &
  Partial<Pick<WorkerStatusReply__Output, 'expertTokens' | 'loading'>>;
export type ExpertTokenCount = ExpertTokenCount__Output;

export type ExpertRequest = ExpertRequest__Output;
export type ExpertReply = ExpertReply__Output;

export type TensorChunk = TensorChunk__Output;
export type ConfigReply = ConfigReply__Output;

/** Planned hand-over (CommitPlan / FetchKv). */
export type SequencePosition = SequencePosition__Output;
export type CommitRequest = CommitRequest__Output;
export type CommitReply = CommitReply__Output;
export type KvSlice = KvSlice__Output;

// ---- client API (inference.proto) ----

export type WireSamplingParams = SamplingParams__Output;
export type GenerateRequest = GenerateRequest__Output;
export type WireFinishReason = FinishReason__Output;
export type GenerateEvent = GenerateEvent__Output;
export type PromptPiece = PromptPiece__Output;
export type ChatTurn = ChatTurn__Output;
export type EmbedInput = EmbedInput__Output;
export type ClusterStatus = ClusterStatus__Output;
