/**
 * Builds ONNX models in TypeScript. A GraphBuilder collects inputs, initializers and nodes with
 * generated value names; `toModel()` encodes the ONNX ModelProto that onnxruntime loads.
 * Field numbers follow onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto, ...).
 */
import { ProtoWriter } from './protobuf';

export const ONNX_FLOAT = 1;
export const ONNX_INT32 = 6;
export const ONNX_INT64 = 7;
export const ONNX_FLOAT16 = 10;

/** A symbolic dimension is a string (named), a fixed one a number. */
export type Dim = number | string;
export type Attr = number | string | readonly number[] | { readonly float: number } | { readonly floats: readonly number[] };

const OPSET_DEFAULT = 17;
const OPSET_MICROSOFT = 1;
const IR_VERSION = 8;

interface ValueInfo {
  readonly name: string;
  readonly elemType: number;
  readonly dims: readonly Dim[];
}

export interface Initializer {
  readonly name: string;
  readonly elemType: number;
  readonly dims: readonly number[];
  /** Little-endian raw bytes. */
  readonly raw: Uint8Array;
}

interface Node {
  readonly op: string;
  readonly domain: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Readonly<Record<string, Attr>>;
}

export class GraphBuilder {
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly initializers: Initializer[] = [];
  private readonly nodes: Node[] = [];
  private counter = 0;

  constructor(private readonly name: string) {}

  input(name: string, elemType: number, dims: readonly Dim[]): string {
    this.inputs.push({ name, elemType, dims });
    return name;
  }

  /** Declares `value` a graph output under `name` (an Identity node renames it when needed). */
  output(value: string, name: string, elemType: number, dims: readonly Dim[]): void {
    if (value !== name) this.op('Identity', [value], { outputName: name });
    this.outputs.push({ name, elemType, dims });
  }

  weightF32(name: string, dims: readonly number[], values: Float32Array): string {
    this.initializers.push({ name, elemType: ONNX_FLOAT, dims, raw: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
    return name;
  }

  constInt64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = `c${this.counter++}`;
    const raw = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
    this.initializers.push({ name, elemType: ONNX_INT64, dims, raw });
    return name;
  }

  constF32(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const name = `c${this.counter++}`;
    this.initializers.push({ name, elemType: ONNX_FLOAT, dims, raw: new Uint8Array(new Float32Array(values).buffer) });
    return name;
  }

  /** Adds a node with one output and returns that output's name. */
  op(type: string, inputs: readonly string[], options: { attrs?: Record<string, Attr>; domain?: string; outputName?: string } = {}): string {
    const output = options.outputName ?? `v${this.counter++}`;
    this.nodes.push({ op: type, domain: options.domain ?? '', inputs, outputs: [output], attrs: options.attrs ?? {} });
    return output;
  }

  /** Adds a node with several outputs. */
  opMulti(type: string, inputs: readonly string[], outputCount: number, attrs: Record<string, Attr> = {}, domain = ''): string[] {
    const outputs = Array.from({ length: outputCount }, () => `v${this.counter++}`);
    this.nodes.push({ op: type, domain, inputs, outputs, attrs });
    return outputs;
  }

  toModel(): Uint8Array {
    const graph = new ProtoWriter();
    for (const node of this.nodes) graph.message(1, encodeNode(node));
    graph.string(2, this.name);
    for (const init of this.initializers) graph.message(5, encodeInitializer(init));
    for (const input of this.inputs) graph.message(11, encodeValueInfo(input));
    for (const output of this.outputs) graph.message(12, encodeValueInfo(output));

    const model = new ProtoWriter();
    model.int(1, IR_VERSION);
    model.string(2, 'bora');
    model.message(7, graph);
    model.message(8, new ProtoWriter().string(1, '').int(2, OPSET_DEFAULT));
    model.message(8, new ProtoWriter().string(1, 'com.microsoft').int(2, OPSET_MICROSOFT));
    return model.finish();
  }
}

function encodeNode(node: Node): ProtoWriter {
  const w = new ProtoWriter();
  for (const input of node.inputs) w.string(1, input);
  for (const output of node.outputs) w.string(2, output);
  w.string(4, node.op);
  for (const [name, value] of Object.entries(node.attrs)) w.message(5, encodeAttr(name, value));
  if (node.domain !== '') w.string(7, node.domain);
  return w;
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

function encodeAttr(name: string, value: Attr): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: pass floats as { float: x }`);
    return w.int(3, value).int(20, ATTR_INT);
  }
  if (typeof value === 'string') return w.string(4, value).int(20, ATTR_STRING);
  if (Array.isArray(value)) {
    for (const v of value as readonly number[]) w.int(8, v);
    return w.int(20, ATTR_INTS);
  }
  if ('float' in value) return w.float(2, value.float).int(20, ATTR_FLOAT);
  for (const v of (value as { floats: readonly number[] }).floats) w.float(7, v);
  return w.int(20, ATTR_FLOATS);
}

function encodeInitializer(init: Initializer): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of init.dims) w.int(1, d);
  w.int(2, init.elemType);
  w.string(8, init.name);
  w.bytesField(9, init.raw);
  return w;
}

function encodeValueInfo(info: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of info.dims) {
    shape.message(1, typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d));
  }
  const tensorType = new ProtoWriter().int(1, info.elemType).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, info.name).message(2, type);
}
