/**
 * RunExperts requests of bounded size. One layer step's calls to one holder can carry every token
 * of a merged micro-batch (4096 tokens x hidden 4096 x 4 bytes = 64 MiB), which would force every
 * node port to accept messages that large. Instead the sender splits a step's calls into requests
 * of at most `maxBytes` of activations, and a call larger than that into calls of the same expert
 * on consecutive row ranges. The kernels compute each row alike alone or batched
 * (shape-invariant), so the outputs, put back together, are those of the unsplit call.
 */
import type { ExpertCall } from '../common/engine/experts';

/** Where a piece's rows go: call `call` of the original request, from row `row`. */
export interface PieceOrigin {
  readonly call: number;
  readonly row: number;
}

export interface RequestPiece {
  readonly calls: ExpertCall[];
  readonly origins: PieceOrigin[];
}

export function splitExpertCalls(calls: readonly ExpertCall[], maxBytes: number): RequestPiece[] {
  const pieces: RequestPiece[] = [];
  let current: RequestPiece = { calls: [], origins: [] };
  let bytes = 0;
  const flush = (): void => {
    if (current.calls.length > 0) pieces.push(current);
    current = { calls: [], origins: [] };
    bytes = 0;
  };
  calls.forEach((c, index) => {
    const width = widthOf(c);
    const rowBytes = Math.max(1, width * 4);
    const maxRows = Math.max(1, Math.floor(maxBytes / rowBytes));
    for (let row = 0; row === 0 || row < c.tokens; row += maxRows) {
      const rows = Math.min(maxRows, c.tokens - row);
      const pieceBytes = rows * rowBytes;
      if (bytes > 0 && bytes + pieceBytes > maxBytes) flush();
      const x = rows === c.tokens ? c.x : c.x.subarray(row * width, (row + rows) * width);
      current.calls.push({ expert: c.expert, x, tokens: rows });
      current.origins.push({ call: index, row });
      bytes += pieceBytes;
      if (c.tokens === 0) break;
    }
  });
  flush();
  return pieces;
}

/** The outputs of the original calls, from the pieces' outputs (one per piece call, in order). */
export function joinExpertOutputs(calls: readonly ExpertCall[], pieces: readonly RequestPiece[], outputs: readonly (readonly Float32Array[])[]): Float32Array[] {
  if (pieces.length === 1 && pieces[0].calls.length === calls.length) return [...outputs[0]];
  const joined = calls.map((c) => new Float32Array(c.x.length)); // (tokens, H), like the input
  pieces.forEach((piece, p) => piece.origins.forEach((origin, i) => joined[origin.call].set(outputs[p][i], origin.row * widthOf(calls[origin.call]))));
  return joined;
}

function widthOf(c: ExpertCall): number {
  return c.tokens === 0 ? 0 : c.x.length / c.tokens;
}
