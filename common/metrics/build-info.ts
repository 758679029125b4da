/**
 * bora_build_info: a constant 1 whose labels say what runs (Bora's version, Node's version, the
 * node's role and the model it serves), so that dashboards and alerts can tell versions apart
 * (a version mismatch across nodes shows as more than one series).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';

/** Bora's version from its package.json (two levels above this file in dist/ and in the source tree). */
export function boraVersion(): string {
  for (const up of [join(__dirname, '..', '..', 'package.json'), join(__dirname, '..', '..', '..', 'package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(up, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'bora' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not this one
    }
  }
  return 'unknown';
}

export interface BuildInfo {
  readonly role: 'coordinator' | 'worker';
  readonly model: string;
}

export function registerBuildInfo(registry: Registry, info: BuildInfo): void {
  const gauge = new Gauge({
    name: 'bora_build_info',
    help: 'Always 1; the labels name the Bora and Node versions, the node role and the model served.',
    labelNames: ['version', 'node_version', 'role', 'model'],
    registers: [registry],
  });
  gauge.set({ version: boraVersion(), node_version: process.version, role: info.role, model: info.model }, 1);
}
