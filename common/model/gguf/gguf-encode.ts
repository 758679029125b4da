/**
 * Little-endian encoding of a GGUF header: strings, typed metadata values and tensor infos,
 * accumulated in chunks and joined once.
 */

/** GGUF metadata value type ids. */
export const GGUF_VALUE_TYPE = Object.freeze({ U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9 });

export type GgufValue =
  | { readonly kind: 'u32'; readonly value: number }
  | { readonly kind: 'f32'; readonly value: number }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'strings'; readonly value: readonly string[] }
  | { readonly kind: 'f32s'; readonly value: Float32Array }
  | { readonly kind: 'i32s'; readonly value: Int32Array };

export const u32 = (value: number): GgufValue => ({ kind: 'u32', value });
export const f32 = (value: number): GgufValue => ({ kind: 'f32', value });
export const str = (value: string): GgufValue => ({ kind: 'string', value });
export const bool = (value: boolean): GgufValue => ({ kind: 'bool', value });

export class ByteWriter {
  private readonly chunks: Buffer[] = [];
  length = 0;

  private push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  u32(value: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value);
    this.push(b);
  }

  u64(value: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(value));
    this.push(b);
  }

  string(value: string): void {
    const utf8 = Buffer.from(value, 'utf8');
    this.u64(utf8.length);
    this.push(utf8);
  }

  raw(bytes: Uint8Array): void {
    this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  value(v: GgufValue): void {
    switch (v.kind) {
      case 'u32':
        this.u32(GGUF_VALUE_TYPE.U32);
        return this.u32(v.value);
      case 'f32': {
        this.u32(GGUF_VALUE_TYPE.F32);
        const b = Buffer.alloc(4);
        b.writeFloatLE(v.value);
        return this.push(b);
      }
      case 'bool':
        this.u32(GGUF_VALUE_TYPE.BOOL);
        return this.push(Buffer.from([v.value ? 1 : 0]));
      case 'string':
        this.u32(GGUF_VALUE_TYPE.STRING);
        return this.string(v.value);
      case 'strings':
        this.u32(GGUF_VALUE_TYPE.ARRAY);
        this.u32(GGUF_VALUE_TYPE.STRING);
        this.u64(v.value.length);
        for (const s of v.value) this.string(s);
        return;
      case 'f32s':
      case 'i32s':
        this.u32(GGUF_VALUE_TYPE.ARRAY);
        this.u32(v.kind === 'f32s' ? GGUF_VALUE_TYPE.F32 : GGUF_VALUE_TYPE.I32);
        this.u64(v.value.length);
        return this.raw(new Uint8Array(v.value.buffer, v.value.byteOffset, v.value.byteLength));
    }
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}
